"""Model families behind one loader: resolve a name or folder, then load the right encoder."""

from __future__ import annotations

import os
from pathlib import Path

from embedbox.catalog import ModelSpec, find, hub_snapshot
from embedbox.errors import ModelNotFound


def locate(spec: ModelSpec) -> Path | None:
    """Where a catalog model's weights are on this machine, or None. A model split across
    packages is assembled into the data dir on first use (a damaged part: `ModelNotFound`)."""
    if spec.split_zip is not None:
        from embedbox.models.assets import assembled_path

        found = assembled_path(spec.split_zip)
        if found is not None:
            return found
    return spec.local_path()


def resolve(name_or_path: str | os.PathLike[str]) -> tuple[Path, ModelSpec | None]:
    """Find a model's folder on this machine without touching the network.

    Order: an existing local folder, a catalog name (installed package or HF cache), a name
    registered with `embedbox models register`, then a Hub id looked up in the local Hugging Face
    cache. The error lists what was tried and how to fix it.
    """
    raw = str(name_or_path)
    if not raw.strip():
        raise ModelNotFound(
            "model name is empty; pass a catalog name (see `embedbox models`) or a folder"
        )
    path = Path(raw).expanduser()
    if path.is_dir():
        return path.resolve(), find(path.name)
    spec = find(raw)
    if spec is not None:
        found = locate(spec)
        if found is not None:
            return found, spec
        how = (
            spec.where()
            if spec.split_zip
            else f"pip install {spec.install or spec.package or spec.distribution}"
            if spec.package or spec.distribution
            else f"run `{spec.where()}` on a machine with internet and copy the HF cache here, "
            "or pass the model's local folder"
        )
        raise ModelNotFound(f"model {spec.name!r} is not on this machine; {how}")
    from embedbox.models.registry import lookup

    registered = lookup(raw)
    if registered is not None:
        return registered, None
    if "/" in raw and not raw.startswith((".", "/", "~")):
        cached = hub_snapshot(raw)
        if cached is not None:
            return cached, None
    raise ModelNotFound(
        f"model {raw!r} not found: no folder at {path.resolve()}, no catalog entry "
        f"(see `embedbox models`), no registered model, and no snapshot in the Hugging Face cache; "
        "pass a local model folder or download it into the cache on a machine with internet"
    )
