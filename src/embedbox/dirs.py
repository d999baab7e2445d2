"""Where embedbox keeps files on this machine (nothing here creates them).

data dir    collections, assembled models, the model registry:
            $EMBEDBOX_DATA_DIR, else $XDG_DATA_HOME/embedbox, else the platform's user data
            dir (~/.local/share/embedbox on Linux)
cache dir   derived files that can be rebuilt at any time (converted models, measurements):
            $EMBEDBOX_CACHE_DIR, else $XDG_CACHE_HOME/embedbox, else the platform's user
            cache dir (~/.cache/embedbox on Linux)
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """`override` or the data dir."""
    return _pick(override, "EMBEDBOX_DATA_DIR", "XDG_DATA_HOME", "user_data_dir")


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """`override` or the cache dir."""
    return _pick(override, "EMBEDBOX_CACHE_DIR", "XDG_CACHE_HOME", "user_cache_dir")


def _pick(override: str | os.PathLike[str] | None, own: str, xdg: str, platform: str) -> Path:
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(own):
        return Path(os.environ[own]).expanduser()
    if os.environ.get(xdg):
        return Path(os.environ[xdg]).expanduser() / "embedbox"
    import platformdirs

    return Path(getattr(platformdirs, platform)("embedbox", appauthor=False))
