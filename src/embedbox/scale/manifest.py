"""The job's manifest: which shards are finished, with the model and settings that made them.

It is JSON, rewritten atomically (temp file, fsync, rename) by the driver alone, after each
shard's files are already in place; so a shard listed in it is always complete on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedbox.errors import Conflict, InputError

MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
ERRORS_DIR = "_errors"
VERSION = 1


@dataclass
class Manifest:
    settings: dict[str, Any]
    inputs: list[dict[str, Any]]
    model: dict[str, Any] = field(default_factory=dict)
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, **self.__dict__}

    def save(self, folder: Path) -> None:
        write_atomic(folder / MANIFEST, json.dumps(self.to_dict(), indent=1).encode())


def load(folder: Path) -> Manifest | None:
    """The manifest in `folder`, or None when there is none yet."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.pop("version") != VERSION:
            raise ValueError("unknown version")
        return Manifest(**data)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(
            f"{path} is not an embedbox manifest ({exc}); use another --output folder"
        ) from exc


def check_resumable(old: Manifest, settings: dict[str, Any], inputs: list[dict[str, Any]]) -> None:
    """A rerun resumes only with the same settings and unchanged inputs; else a `Conflict`."""
    diff = [
        f"{k}: {old.settings.get(k)!r} -> {v!r}"
        for k, v in settings.items()
        if old.settings.get(k) != v
    ]
    if diff:
        raise Conflict(
            f"the output folder holds a job made with other settings ({'; '.join(diff)}); "
            "use a new --output folder or pass --overwrite to start again"
        )
    before = {i["path"]: i for i in old.inputs}
    now = {i["path"]: i for i in inputs}
    if set(before) != set(now):
        raise Conflict(
            "the output folder holds a job over other input files; use a new --output folder "
            "or pass --overwrite to start again"
        )
    changed = [p for p in now if before[p] != now[p]]
    if changed:
        raise Conflict(
            f"input {changed[0]} changed since the job started (size or time); pass --overwrite "
            "to embed it again from scratch"
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def clear(folder: Path) -> None:
    """Remove what a job wrote in `folder` (parts, errors, manifest, temp files), nothing else."""
    for pattern in ("part-*.parquet", ".tmp-*", f"{ERRORS_DIR}/*.jsonl", MANIFEST, ERRORS):
        for path in folder.glob(pattern):
            path.unlink()
