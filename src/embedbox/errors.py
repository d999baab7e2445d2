"""Every error embedbox raises, in one tree. Catch `EmbedboxError` for all of them.

    EmbedboxError
    ├── InputError (ValueError)           an argument or input is unusable: empty or non-string
    │   │                                 text, invalid Unicode, bad filter, wrong dimension...
    │   ├── TruncationError               a text is too long and truncate="error" was asked for
    │   └── OutOfVocabulary (KeyError)    a word the word model does not know
    ├── NotFound (KeyError)               an id, collection, file or folder does not exist
    ├── Conflict                          an id or name exists already, or a collection is used
    │                                     with another model than it was made with
    ├── ModelNotFound (LookupError)       a model's weights are not on this machine
    ├── MissingDependency (ImportError)   an optional package is not installed (names the extra)
    ├── StorageError (OSError)            a collection's files cannot be read or written: read-only
    │                                     folder, full disk, damaged database
    └── Unavailable                       the server cannot take the request now (HTTP 503/504)
        ├── Overloaded                    its queue is full
        └── RequestTimeout (TimeoutError) no result within the request timeout

Warnings derive from `EmbedboxWarning` (a `UserWarning`), e.g. `TruncationWarning`,
`DimensionsWarning`.
The built-in bases let callers who know Python's own exceptions catch these too
(`except ValueError`, `except KeyError`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "Conflict",
    "DimensionsWarning",
    "EmbedboxError",
    "EmbedboxWarning",
    "InputError",
    "MissingDependency",
    "ModelNotFound",
    "NotFound",
    "OutOfVocabulary",
    "Overloaded",
    "RequestTimeout",
    "StorageError",
    "TruncationError",
    "TruncationWarning",
    "Unavailable",
    "require",
]


class EmbedboxError(Exception):
    """Base class for all embedbox errors."""


class InputError(EmbedboxError, ValueError):
    """The caller handed in something unusable (empty text, wrong type, bad filter, ...)."""


class TruncationError(InputError):
    """A text is longer than the model accepts and the caller asked for `truncate="error"`."""


class _Message(EmbedboxError):
    """KeyError-derived errors would print repr(message); these print the message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OutOfVocabulary(_Message, InputError, KeyError):
    """A word the model does not know; the message suggests close spellings."""


class NotFound(_Message, KeyError):
    """An id, collection or file does not exist."""


class Conflict(EmbedboxError):
    """An id or name already exists, or a collection is used with an incompatible model."""


class ModelNotFound(EmbedboxError, LookupError):
    """A model is not available locally; the message says what to install or which paths were tried."""


class MissingDependency(EmbedboxError, ImportError):
    """An optional package is missing; the message names the extra that installs it."""


class StorageError(EmbedboxError, OSError):
    """A collection's files cannot be used. `reason` says why: "read_only", "full" (the disk),
    "damaged" (the database file), "unreadable" or "other"."""

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0]) if self.args else ""


class Unavailable(EmbedboxError):
    """The server cannot take the request right now; retry later."""


class Overloaded(Unavailable):
    """The request queue is full."""


class RequestTimeout(Unavailable, TimeoutError):
    """The request waited longer than the server's timeout."""


class EmbedboxWarning(UserWarning):
    """Base class of embedbox's warnings."""


class TruncationWarning(EmbedboxWarning):
    """Some texts were longer than the model's maximum and were cut."""


class DimensionsWarning(EmbedboxWarning):
    """Vectors were shortened (`dimensions=`) below the sizes the model was trained for."""


# Import name -> the distribution pip installs, where they differ.
_PIP_NAMES = {
    "faiss": "faiss-cpu",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "umap": "umap-learn",
    "skimage": "scikit-image",
    "prometheus_client": "prometheus-client",
}


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import an optional dependency, or raise `MissingDependency` naming the extra to install.

    >>> KMeans = require("sklearn.cluster", "tasks", "clustering").KMeans
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the package is there but one of its own dependencies is broken
        package = _PIP_NAMES.get(top, top)
        what = f"{purpose} needs" if purpose else "this needs"
        raise MissingDependency(
            f"{what} {package}, which is not installed; pip install 'embedbox[{extra}]'"
        ) from exc
