"""Deprecated: `embedbox.collection` moved to `embedbox.store.collection` (this alias goes in the next release)."""

import warnings

from embedbox.store.collection import *  # noqa: F403
from embedbox.store.collection import __all__  # noqa: F401

warnings.warn(
    "embedbox.collection is deprecated; import from embedbox (or embedbox.store)",
    DeprecationWarning,
    stacklevel=2,
)
