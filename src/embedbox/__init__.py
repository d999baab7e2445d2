"""embedbox: local-first embeddings for text, words and images.

    from embedbox import Embedder, Collection
    Embedder().embed(["A cat sleeps.", "A kitten naps."])

The package is layered; the folders say which layer a module belongs to:

    errors, types, catalog, inputs, io, hardware, similarity, quantize   foundations (no torch)
    models/      one package per model family: text, words, images (torch lives here)
    embed        `Embedder`, the text facade; words and images are the other families' facades
    store/       collections: SQLite, the FAISS index, search, ingest, image collections
    tasks/       classify, cluster, mining (dedup), recommend, projection (maps), tokens, train
    scale/ server/ cli/   batch jobs, the HTTP server, the command line

Names are imported on first use (PEP 562), so `import embedbox` stays light: no torch until a
model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The error tree is small and imports nothing: always here, so `except embedbox.InputError` works.
from embedbox.errors import (
    Conflict,
    DimensionsWarning,
    EmbedboxError,
    EmbedboxWarning,
    InputError,
    MissingDependency,
    ModelNotFound,
    NotFound,
    OutOfVocabulary,
    Overloaded,
    RequestTimeout,
    StorageError,
    TruncationError,
    TruncationWarning,
    Unavailable,
)

if TYPE_CHECKING:
    from embedbox.embed import Embedder, EmbedderOptions, EmbedResult
    from embedbox.evaluation import EvalReport, evaluate, evaluate_collection
    from embedbox.images import embed_images
    from embedbox.store.collection import Collection, Item, drop_collection, list_collections
    from embedbox.store.images import add_images, open_image_collection, similar_images
    from embedbox.store.search import Hit
    from embedbox.tasks.tokens import embed_tokens
    from embedbox.tasks.train import train
    from embedbox.words import WordVectors, load_words

# public name -> the module that defines it (imported on first use)
_WHERE: dict[str, str] = {
    "Embedder": "embedbox.embed",
    "EmbedderOptions": "embedbox.embed",
    "EmbedResult": "embedbox.embed",
    "embed_images": "embedbox.images",
    "EvalReport": "embedbox.evaluation",
    "evaluate": "embedbox.evaluation",
    "evaluate_collection": "embedbox.evaluation",
    "Collection": "embedbox.store.collection",
    "Item": "embedbox.store.collection",
    "drop_collection": "embedbox.store.collection",
    "list_collections": "embedbox.store.collection",
    "Hit": "embedbox.store.search",
    "add_images": "embedbox.store.images",
    "open_image_collection": "embedbox.store.images",
    "similar_images": "embedbox.store.images",
    "embed_tokens": "embedbox.tasks.tokens",
    "train": "embedbox.tasks.train",
    "WordVectors": "embedbox.words",
    "load_words": "embedbox.words",
}

__all__ = [
    "Collection",
    "Conflict",
    "DimensionsWarning",
    "EmbedResult",
    "EmbedboxError",
    "EmbedboxWarning",
    "Embedder",
    "EmbedderOptions",
    "EvalReport",
    "Hit",
    "InputError",
    "Item",
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
    "WordVectors",
    "__version__",
    "add_images",
    "drop_collection",
    "embed_images",
    "embed_tokens",
    "evaluate",
    "evaluate_collection",
    "list_collections",
    "load_words",
    "open_image_collection",
    "similar_images",
    "train",
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("embedbox")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs ~0.1 s: read only when asked
        globals()[name] = _version()
        return globals()[name]
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'embedbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
