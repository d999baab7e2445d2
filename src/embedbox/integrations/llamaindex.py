"""LlamaIndex: `EmbedboxEmbedding` (a `BaseEmbedding`) and `EmbedboxVectorStore` (a vector
store over an embedbox `Collection`). Needs `pip install 'embedbox[llamaindex]'`.

>>> store = EmbedboxVectorStore.open("articles", data_dir="./data")
>>> index = VectorStoreIndex.from_documents(
...     docs, storage_context=StorageContext.from_defaults(vector_store=store),
...     embed_model=EmbedboxEmbedding())
>>> index.as_retriever(filters=MetadataFilters(filters=[MetadataFilter(key="year", value=2001)]))

Nodes are stored as embedbox documents (id = node id, text = node text, metadata = the node's
metadata plus LlamaIndex's `_node_content`, `ref_doc_id`, ...), with the vectors LlamaIndex
computed. `MetadataFilters` become an embedbox `where`, applied before ranking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.embed import Embedder
from embedbox.errors import InputError, NotFound
from embedbox.integrations import missing
from embedbox.store.collection import Collection
from embedbox.store.search import Hit
from embedbox.tasks.recommend import mmr
from embedbox.types import Compute, InputType

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode, TextNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as exc:
    raise missing("llama-index-core", "llamaindex", exc) from exc

__all__ = ["EmbedboxEmbedding", "EmbedboxVectorStore", "to_where"]

_COMPARE = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
}


class EmbedboxEmbedding(BaseEmbedding):
    """LlamaIndex embeddings computed locally by an embedbox `Embedder`.

    Texts get the model's document prompt, queries its query prompt. `embedder`: reuse a loaded
    `Embedder`. `long_text="chunk"` embeds texts longer than the model's window whole (pooled
    windows) instead of truncating them with a warning.
    """

    model_name: str = DEFAULT_TEXT_MODEL
    embed_batch_size: int = 256  # embedbox batches by token budget inside each call
    dimensions: int | None = None
    long_text: Literal["truncate", "chunk"] = "truncate"
    _embedder: Embedder = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_TEXT_MODEL,
        *,
        embedder: Embedder | None = None,
        compute: Compute = "auto",
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        emb = embedder or Embedder(model_name, compute=compute, device=device)
        super().__init__(model_name=emb.name, **kwargs)
        self._embedder = emb

    @classmethod
    def class_name(cls) -> str:
        return "EmbedboxEmbedding"

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        vectors = self._embedder.embed(
            texts, input_type=input_type, dimensions=self.dimensions, long_text=self.long_text
        )
        return vectors.tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query], "query")[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text], "document")[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts, "document")

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class EmbedboxVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over an embedbox `Collection`.

    Query modes: default (vector), `mmr` (embedbox's MMR; `mmr_threshold` is its lambda, 1 =
    pure relevance), `text_search` (BM25) and `hybrid` (rank fusion; needs a collection of a
    text model, which embeds the query itself; `alpha` weighs vector against keyword ranks).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    _collection: Collection = PrivateAttr()

    def __init__(self, collection: Collection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._collection = collection

    @classmethod
    def open(
        cls,
        name: str | Path,
        model: str | None = None,
        *,
        data_dir: str | Path | None = None,
        embedder: Embedder | None = None,
        create: bool = True,
    ) -> EmbedboxVectorStore:
        """Open (by default create) collection `name` for `model` (default: the embedder's,
        else all-MiniLM-L6-v2); its vectors must come from that model."""
        col = Collection.open(
            name,
            model or (embedder.name if embedder else None),
            data_dir=data_dir,
            create=create,
            embedder=embedder,
        )
        return cls(col)

    @classmethod
    def class_name(cls) -> str:
        return "EmbedboxVectorStore"

    @property
    def client(self) -> Collection:
        return self._collection

    # ---- writing --------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store nodes with their embeddings (an existing node id is replaced) -> node ids."""
        if not nodes:
            return []
        missing_vectors = [n.node_id for n in nodes if n.embedding is None]
        if missing_vectors:
            raise InputError(
                f"nodes without an embedding: {missing_vectors[:5]}; embed them first "
                "(VectorStoreIndex does this with its embed_model)"
            )
        ids = [n.node_id for n in nodes]
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        metas = [
            node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata)
            for n in nodes
        ]
        vectors = np.asarray([n.get_embedding() for n in nodes], np.float32)
        self._collection.upsert(texts, ids=ids, metadatas=metas, vectors=vectors)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document `ref_doc_id`."""
        self._collection.delete(where={"ref_doc_id": ref_doc_id})

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        if node_ids is None and filters is None:
            raise InputError("delete_nodes needs node_ids or filters; use clear() to empty it")
        self._collection.delete(ids=node_ids, where=to_where(filters))

    def clear(self) -> None:
        self._collection.delete(where={})

    # ---- reading --------------------------------------------------------------------------
    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id (in that order, missing ones left out) and/or by filter."""
        where = to_where(filters)
        if node_ids is None:
            items = list(self._collection.items(where=where))
        else:
            items = []
            for node_id in dict.fromkeys(node_ids):
                try:
                    items.extend(self._collection.get([node_id]))
                except NotFound:
                    continue
            if where is not None:
                allowed = {it.id for it in self._collection.items(where=where)}
                items = [it for it in items if it.id in allowed]
        return [_node(it.id, it.text, it.metadata) for it in items]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.node_ids:
            raise InputError("querying by node_ids is not supported; filter on metadata instead")
        where = to_where(query.filters)
        if query.doc_ids:
            docs = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            where = docs if where is None else {"$and": [where, docs]}
        k = query.similarity_top_k
        mode = query.mode
        if mode == VectorStoreQueryMode.TEXT_SEARCH:
            hits = self._collection.search(_text(query), k=k, where=where, mode="keyword")
        elif mode == VectorStoreQueryMode.HYBRID:
            alpha = 0.5 if query.alpha is None else query.alpha
            hits = self._collection.search(
                _text(query), k=k, where=where, mode="hybrid", weights=(alpha, 1.0 - alpha)
            )
        elif mode in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            if query.query_embedding is None:
                raise InputError("this query has no query_embedding; give the index an embed_model")
            vector = np.asarray(query.query_embedding, np.float32)
            if mode == VectorStoreQueryMode.MMR:
                hits = self._mmr(vector, k, where, query.mmr_threshold, kwargs)
            else:
                hits = self._collection.search(vector, k=k, where=where)
        else:
            raise InputError(
                f"query mode {mode.value!r} is not supported; use default, mmr, text_search "
                "or hybrid"
            )
        return VectorStoreQueryResult(
            nodes=[_node(h.id, h.text, h.metadata) for h in hits],
            similarities=[h.score for h in hits],
            ids=[h.id for h in hits],
        )

    def _mmr(
        self,
        vector: np.ndarray,
        k: int,
        where: dict[str, Any] | None,
        threshold: float | None,
        kwargs: dict[str, Any],
    ) -> list[Hit]:
        lam = kwargs.get("mmr_threshold", threshold)
        lam = 0.5 if lam is None else float(lam)
        if not 0.0 <= lam <= 1.0:
            raise InputError(f"mmr_threshold must be between 0 and 1, got {lam}")
        fetch = int(kwargs.get("mmr_prefetch_k", max(20, 4 * k)))
        hits = self._collection.search(vector, k=max(k, fetch), where=where)
        if not hits:
            return []
        _, candidates = self._collection.vectors(ids=[h.id for h in hits])
        return [hits[i] for i in mmr(vector, candidates, k, lam)]


def to_where(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex `MetadataFilters` -> an embedbox `where` (None when there are none).

    IS_EMPTY matches a missing key or an empty string; TEXT_MATCH has no embedbox equivalent
    and is an `InputError`.
    """
    if filters is None or not filters.filters:
        return None
    clauses = [
        to_where(f) if isinstance(f, MetadataFilters) else _clause(f) for f in filters.filters
    ]
    parts = [c for c in clauses if c is not None]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    if len(parts) == 1:
        return parts[0]
    return {"$and" if condition == FilterCondition.AND else "$or": parts}


def _clause(f: MetadataFilter) -> dict[str, Any]:
    op, key, value = f.operator, f.key, f.value
    if op in _COMPARE:
        return {key: {_COMPARE[op]: value}}
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        values = value if isinstance(value, list) else [value]
        joiner = "$or" if op == FilterOperator.ANY else "$and"
        return {joiner: [{key: {"$contains": v}} for v in values]}
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{key: {"$exists": False}}, {key: ""}]}
    raise InputError(
        f"filter on {key!r}: operator {op.value!r} is not supported by embedbox filters; use "
        "==, !=, >, >=, <, <=, in, nin, contains, any, all or is_empty"
    )


def _node(doc_id: str, text: str, metadata: dict[str, Any]) -> BaseNode:
    """A stored document back as a node; documents not written by LlamaIndex (added with the
    embedbox CLI, say) become plain `TextNode`s."""
    if "_node_content" not in metadata:
        return TextNode(id_=doc_id, text=text, metadata=metadata)
    return metadata_dict_to_node(metadata, text=text)


def _text(query: VectorStoreQuery) -> str:
    if not query.query_str:
        raise InputError(f"{query.mode.value} search needs the query text (query_str)")
    return query.query_str
