"""Errors of the backend layer (kept beside it; `embedbox.errors` is the package's tree)."""

from __future__ import annotations

from embedbox.errors import EmbedboxError, InputError


class BackendUnavailable(InputError):
    """A backend was asked for that cannot run here: its package is missing (the message names
    the extra to install), or it cannot run this model or compute."""


class ConversionFailed(EmbedboxError):
    """A backend could not convert this model (the reason goes into `describe()`); the
    selection falls back to torch, so users see it only there."""
