"""embedbox: local-first embeddings for text, words and images."""

from embedbox.embed import Embedder, EmbedderOptions, EmbedResult, TruncationWarning
from embedbox.errors import (
    Conflict,
    EmbedboxError,
    InputError,
    ModelNotFound,
    NotFound,
    TruncationError,
)

__all__ = [
    "Conflict",
    "EmbedResult",
    "EmbedboxError",
    "Embedder",
    "EmbedderOptions",
    "InputError",
    "ModelNotFound",
    "NotFound",
    "TruncationError",
    "TruncationWarning",
]
__version__ = "0.1.0"
