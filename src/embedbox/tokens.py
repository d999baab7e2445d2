"""Deprecated: `embedbox.tokens` moved to `embedbox.tasks.tokens` (this alias goes in the next release)."""

import warnings

from embedbox.tasks.tokens import *  # noqa: F403
from embedbox.tasks.tokens import __all__  # noqa: F401

warnings.warn(
    "embedbox.tokens is deprecated; import from embedbox (or embedbox.tasks.tokens)",
    DeprecationWarning,
    stacklevel=2,
)
