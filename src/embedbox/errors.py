"""One small exception tree; every error a user can cause is an `EmbedboxError`."""

from __future__ import annotations


class EmbedboxError(Exception):
    """Base class for all embedbox errors."""


class InputError(EmbedboxError, ValueError):
    """The caller handed in something unusable (empty text, wrong type, bad filter, ...)."""


class TruncationError(InputError):
    """A text is longer than the model accepts and the caller asked for `truncate="error"`."""


class ModelNotFound(EmbedboxError, LookupError):
    """A model is not available locally; the message says what to install or which paths were tried."""


class NotFound(EmbedboxError, KeyError):
    """An id, collection or file does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class Conflict(EmbedboxError):
    """An id or name already exists, or a collection is used with an incompatible model."""
