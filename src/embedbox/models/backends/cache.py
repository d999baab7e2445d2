"""On-disk cache of converted models and of `auto`'s measured choices.

Entries live under `user_cache_dir("embedbox")` (or `$EMBEDBOX_CACHE_DIR`), one folder per key.
A key hashes everything the entry depends on (the model files' content, runtime versions,
compute), so a changed model file or a new runtime gets a new entry. Entries are built in a
temporary folder and renamed into place (atomic); each records checksums of its files, and an
entry whose files do not match is rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_ENV = "EMBEDBOX_CACHE_DIR"
MANIFEST = "entry.json"
# Files that decide what a text model computes (weights, config, adapters); tokenizer files too,
# since a backend may bake shapes from them.
_MODEL_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".onnx", ".txt", ".model")


def cache_dir() -> Path:
    """Root of embedbox's cache: `$EMBEDBOX_CACHE_DIR`, else the platform's user cache dir."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("embedbox"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=256)
def _file_hash_memo(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def model_hash(path: Path) -> str:
    """Content hash of a model: one file, or every weight/config file of a folder (recursively).

    Hashes are memoised per process by (path, size, mtime), so loading the same model twice
    reads its weights once.
    """
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _MODEL_SUFFIXES)
    )
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        rel = f.name if path.is_file() else f.relative_to(path).as_posix()
        digest.update(f"{rel}\0{_file_hash_memo(str(f), st.st_size, st.st_mtime_ns)}\0".encode())
    return digest.hexdigest()


def key(parts: dict[str, Any]) -> str:
    """A stable short key for `parts` (JSON-able values)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def read_entry(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete, intact entry; None when missing, partial or corrupt."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        for name, want in files.items():
            if file_sha256(folder / name) != want:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_entry(
    folder: Path, build: Callable[[Path], dict[str, Any]], files: tuple[str, ...]
) -> dict[str, Any]:
    """Build an entry into a temporary sibling folder, checksum `files`, rename into place.

    `build(tmp)` writes the files and returns extra manifest fields. A broken entry at `folder`
    is replaced; when another process finished the same entry first, theirs is kept.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        extra = build(tmp)
        manifest = {**extra, "files": {name: file_sha256(tmp / name) for name in files}}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if folder.exists() and read_entry(folder) is None:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # a complete entry appeared meanwhile (another process): keep it
            if read_entry(folder) is None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a small JSON file atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
