"""Names for local model folders: `embedbox models register NAME PATH`.

The registry is one JSON file, `<data dir>/models.json` (name -> absolute folder), so a name works
from any directory and in every process that shares the data dir. `models.resolve` looks a name
up here after local folders and before the catalog; a name may not shadow a catalog model.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from embedbox import dirs
from embedbox.catalog import find
from embedbox.errors import Conflict, InputError, ModelNotFound, NotFound

FILE = "models.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _file(data_dir: str | Path | None) -> Path:
    return dirs.data_dir(data_dir) / FILE


def registered(data_dir: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """name -> {"path": absolute folder, "registered": unix time}."""
    path = _file(data_dir)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is damaged ({exc}); fix or delete it") from exc
    return data if isinstance(data, dict) else {}


def lookup(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The folder registered under `name`, if any (a folder since removed is an error)."""
    entry = registered(data_dir).get(name)
    if entry is None:
        return None
    path = Path(entry["path"])
    if not path.is_dir():
        raise ModelNotFound(
            f"model {name!r} is registered at {path}, which no longer exists; register it "
            f"again (`embedbox models register {name} FOLDER --force`) or remove it"
        )
    return path


def register(
    name: str, folder: str | Path, *, force: bool = False, data_dir: str | Path | None = None
) -> Path:
    """Register `folder` (a text model folder) as `name` -> its absolute path."""
    if not _NAME.match(name):
        raise InputError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting "
            "with a letter or digit"
        )
    if find(name) is not None:
        raise Conflict(f"{name!r} is a catalog model (see `embedbox models`); choose another name")
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise NotFound(f"no model folder at {path}")
    from embedbox.models.text import read_model_info

    read_model_info(path)  # a folder embedbox cannot load is refused now, not at first use
    names = registered(data_dir)
    old = names.get(name)
    if old is not None and Path(old["path"]) != path and not force:
        raise Conflict(
            f"{name!r} is already registered for {old['path']}; pass --force to point it at "
            f"{path} (collections that use {name!r} would then embed with the new model)"
        )
    names[name] = {"path": str(path), "registered": time.time()}
    _save(_file(data_dir), names)
    return path


def unregister(name: str, data_dir: str | Path | None = None) -> None:
    names = registered(data_dir)
    if name not in names:
        raise NotFound(f"no model registered as {name!r}")
    del names[name]
    _save(_file(data_dir), names)


def _save(path: Path, names: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(names, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)  # readers see the old file or the new one, never half of one
