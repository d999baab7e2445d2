"""Where collections live: `<data dir>/collections/<name>/collection.db` (+ index files)."""

from __future__ import annotations

import re
from pathlib import Path

from embedbox.dirs import data_dir
from embedbox.errors import InputError

DB_FILE = "collection.db"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"  # also the server's path parameter
_NAME = re.compile(NAME_PATTERN)


def resolve_data_dir(override: str | Path | None = None) -> Path:
    """`override`, else the data dir (see `embedbox.dirs`)."""
    return data_dir(override)


def is_path(name_or_path: str | Path) -> bool:
    if isinstance(name_or_path, Path):
        return True
    return any(c in name_or_path for c in "/\\") or name_or_path.startswith(("~", "."))


def collection_dir(name_or_path: str | Path, data_dir: Path) -> tuple[Path, str]:
    """-> (folder, display name). A bare name must be simple; anything path-like is a folder."""
    if is_path(name_or_path):
        folder = Path(name_or_path).expanduser()
        return folder, folder.resolve().name
    name = str(name_or_path)
    if not _NAME.match(name):
        raise InputError(
            f"invalid collection name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (or give a folder path)"
        )
    return data_dir / "collections" / name, name
