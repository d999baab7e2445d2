"""Deprecated: `embedbox.recommend` moved to `embedbox.tasks.recommend` (this alias goes in the next release)."""

import warnings

from embedbox.tasks.recommend import *  # noqa: F403
from embedbox.tasks.recommend import __all__  # noqa: F401

warnings.warn(
    "embedbox.recommend is deprecated; import from embedbox (or embedbox.tasks.recommend)",
    DeprecationWarning,
    stacklevel=2,
)
