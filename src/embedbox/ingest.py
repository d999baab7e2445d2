"""Deprecated: `embedbox.ingest` moved to `embedbox.store.ingest` (this alias goes in the next release)."""

import warnings

from embedbox.store.ingest import *  # noqa: F403
from embedbox.store.ingest import __all__  # noqa: F401

warnings.warn(
    "embedbox.ingest is deprecated; import from embedbox (or embedbox.store.ingest)",
    DeprecationWarning,
    stacklevel=2,
)
