"""embedbox: local-first embeddings for text, words and images."""

from embedbox.collection import Collection, Hit, Item, drop_collection, list_collections
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
    "Collection",
    "Conflict",
    "EmbedResult",
    "EmbedboxError",
    "Embedder",
    "EmbedderOptions",
    "Hit",
    "InputError",
    "Item",
    "ModelNotFound",
    "NotFound",
    "TruncationError",
    "TruncationWarning",
    "drop_collection",
    "list_collections",
]
__version__ = "0.1.0"
