"""Chroma: keep Chroma, embed with embedbox. Needs `pip install 'embedbox[chroma]'`.

>>> ef = EmbedboxEmbeddingFunction()                    # all-MiniLM-L6-v2, local
>>> col = chromadb.PersistentClient("./chroma").get_or_create_collection("docs", embedding_function=ef)
>>> col.add(ids=["a"], documents=["A cat sleeps."]); col.query(query_texts=["kitten"], n_results=1)

The function is registered with Chroma as "embedbox", so a collection reopened in a later
process (`client.get_collection("docs")`) rebuilds it from its stored config once this module
is imported. Documents get the model's document prompt, queries (`query_texts`) its query prompt.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.embed import Embedder
from embedbox.errors import InputError
from embedbox.integrations import missing
from embedbox.types import Compute, InputType

try:
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError as exc:
    raise missing("chromadb", "chroma", exc) from exc

__all__ = ["EmbedboxEmbeddingFunction"]

_COMPUTES = ("auto", "fp32", "bf16", "fp16")


@functools.lru_cache(maxsize=4)
def _shared(model: str, compute: Compute, device: str | None) -> Embedder:
    """One loaded model per settings: Chroma builds a new function for every collection it opens."""
    return Embedder(model, compute=compute, device=device)


@register_embedding_function
class EmbedboxEmbeddingFunction(EmbeddingFunction[Documents]):
    """A Chroma embedding function computed locally by an embedbox `Embedder`.

    `embedder`: use this loaded `Embedder` (its model is recorded in the config). Vectors are
    float32, L2-normalised when the model normalises, so Chroma's default space is "cosine".
    """

    def __init__(
        self,
        model: str = DEFAULT_TEXT_MODEL,
        *,
        compute: Compute = "auto",
        device: str | None = None,
        dimensions: int | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        if compute not in _COMPUTES:
            raise InputError(f"unknown compute {compute!r}; choose {', '.join(_COMPUTES)}")
        self._embedder = embedder or _shared(model, compute, device)
        self.model = self._embedder.name
        self.compute = compute
        self.device = device
        self.dimensions = dimensions

    def __call__(self, input: Documents) -> Embeddings:
        return self._embed(input, "document")

    def embed_query(self, input: Documents) -> Embeddings:
        return self._embed(input, "query")

    def _embed(self, texts: Documents, input_type: InputType) -> Embeddings:
        vectors = self._embedder.embed(
            list(texts), input_type=input_type, dimensions=self.dimensions
        )
        return [np.asarray(v, np.float32) for v in vectors]

    @staticmethod
    def name() -> str:
        return "embedbox"

    def default_space(self) -> Space:
        return "cosine" if self._embedder.info.normalize else "ip"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "compute": self.compute,
            "device": self.device,
            "dimensions": self.dimensions,
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> EmbedboxEmbeddingFunction:
        return EmbedboxEmbeddingFunction(
            config.get("model", DEFAULT_TEXT_MODEL),
            compute=config.get("compute", "auto"),
            device=config.get("device"),
            dimensions=config.get("dimensions"),
        )

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        for key in ("model", "dimensions"):
            if key in new_config and new_config[key] != old_config.get(key):
                raise InputError(
                    f"a collection's embedding {key} cannot change ({old_config.get(key)!r} -> "
                    f"{new_config[key]!r}): its stored vectors come from the old one"
                )
