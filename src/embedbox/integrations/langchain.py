"""LangChain: `EmbedboxEmbeddings` (an `Embeddings`) and `EmbedboxVectorStore` (a `VectorStore`
over an embedbox `Collection`). Needs `pip install 'embedbox[langchain]'`.

>>> emb = EmbedboxEmbeddings()                             # all-MiniLM-L6-v2, local
>>> store = EmbedboxVectorStore.from_texts(["a cat", "stocks fell"], emb, collection_name="notes")
>>> store.similarity_search("kitten", k=1, filter={"topic": "pets"})

A store built with `EmbedboxEmbeddings` (or over a collection with no `embedding`) lets the
collection embed: long texts are chunked, queries get the model's query prompt and keyword or
hybrid search is available (`mode=`). With any other LangChain `Embeddings` the store keeps that
model's vectors in a collection of kind "vectors".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
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
from embedbox.types import Compute, Mode

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as exc:
    raise missing("langchain-core", "langchain", exc) from exc

__all__ = ["EmbedboxEmbeddings", "EmbedboxVectorStore"]


class EmbedboxEmbeddings(BaseModel, Embeddings):
    """LangChain embeddings computed locally by an embedbox `Embedder`.

    Documents are embedded with the model's document prompt, queries with its query prompt
    (both empty for all-MiniLM-L6-v2). `embedder`: reuse a loaded `Embedder` (its model,
    compute and device then apply). The async methods run the model in a worker thread.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str = DEFAULT_TEXT_MODEL
    compute: Compute = "auto"
    device: str | None = None
    dimensions: int | None = None
    long_text: Literal["truncate", "chunk"] = "truncate"
    embedder: Embedder | None = Field(default=None, exclude=True, repr=False)

    def model_post_init(self, context: Any, /) -> None:
        if self.embedder is None:
            self.embedder = Embedder(self.model, compute=self.compute, device=self.device)
        else:
            self.model = self.embedder.name

    @property
    def _emb(self) -> Embedder:
        if self.embedder is None:  # model_post_init sets it; only a caller clearing it gets here
            self.embedder = Embedder(self.model, compute=self.compute, device=self.device)
        return self.embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._emb.embed(
            texts,
            input_type="document",
            dimensions=self.dimensions,
            long_text=self.long_text,
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        vector = self._emb.embed_one(
            text, input_type="query", dimensions=self.dimensions, long_text=self.long_text
        )
        return vector.tolist()


class EmbedboxVectorStore(VectorStore):
    """A LangChain vector store over an embedbox `Collection`.

    `embedding=None`: the collection embeds texts and queries with its own model (chunking long
    texts, the query prompt, `mode="keyword"` / `"hybrid"` search). Any other `Embeddings`:
    its vectors are stored and searched (open the collection with `kind="vectors"`, or use
    `from_texts` / `open`, which do).

    `filter` is an embedbox `where` (Chroma / MongoDB style: `{"year": {"$gte": 2000}}`),
    applied before ranking. Scores are cosine similarities (dot products if the collection does
    not normalise); `add_texts` with an existing id replaces that document.
    """

    def __init__(self, collection: Collection, embedding: Embeddings | None = None) -> None:
        self.collection = collection
        self._embedding = embedding  # None: the collection embeds
        self._view: EmbedboxEmbeddings | None = None  # `embeddings` of a self-embedding store

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        name: str | Path,
        embedding: Embeddings | None = None,
        *,
        data_dir: str | Path | None = None,
        create: bool = True,
    ) -> EmbedboxVectorStore:
        """Open (by default create) the collection `name` for `embedding`: with `None` or an
        `EmbedboxEmbeddings` the collection embeds with that model; any other `Embeddings`
        gives a collection of kind "vectors" labelled with its class (and model, if it has one).
        """
        if embedding is None or isinstance(embedding, EmbedboxEmbeddings):
            if embedding is not None and embedding.dimensions is not None:
                raise InputError(
                    "a self-embedding collection stores full vectors; drop dimensions= or use "
                    "EmbedboxVectorStore(collection, embedding) to store truncated ones"
                )
            emb = embedding.embedder if embedding is not None else None
            col = Collection.open(
                name,
                emb.name if emb is not None else None,
                data_dir=data_dir,
                create=create,
                embedder=emb,
            )
            store = cls(col)
            store._view = embedding
            return store
        col = Collection.open(
            name, _label(embedding), data_dir=data_dir, create=create, kind="vectors"
        )
        return cls(col, embedding)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection_name: str = "langchain",
        data_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> EmbedboxVectorStore:
        """Open or create `collection_name` (see `open`) and add `texts` to it."""
        if kwargs:
            raise InputError(f"unknown argument(s) {', '.join(sorted(kwargs))}")
        store = cls.open(collection_name, embedding, data_dir=data_dir)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @property
    def embeddings(self) -> Embeddings | None:
        if self._embedding is not None:
            return self._embedding
        if self._view is None:
            self._view = EmbedboxEmbeddings(embedder=self.collection.embedder)
        return self._view

    @property
    def _native(self) -> bool:
        """Whether the collection embeds texts itself (rather than storing given vectors)."""
        return self._embedding is None

    # ---- writing --------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add or replace documents -> their ids (generated where `ids` is None or has None)."""
        if kwargs:
            raise InputError(f"add_texts: unknown argument(s) {', '.join(sorted(kwargs))}")
        text_list = list(texts)
        if not text_list:
            return []
        if ids is not None and len(ids) != len(text_list):
            raise InputError(f"got {len(text_list)} texts but {len(ids)} ids")
        given: list[str | None] = list(ids) if ids is not None else [None] * len(text_list)
        id_list = [i or uuid.uuid4().hex for i in given]
        metas = (
            [dict(m or {}) for m in metadatas] if metadatas is not None else [{}] * len(text_list)
        )
        if self._native:
            self.collection.upsert(text_list, ids=id_list, metadatas=metas)
        else:
            vectors = np.asarray(self._external.embed_documents(text_list), np.float32)
            self.collection.upsert(text_list, ids=id_list, metadatas=metas, vectors=vectors)
        return id_list

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id and/or `filter=` (`filter={}` deletes everything). Ids that
        are not in the collection are skipped."""
        where = kwargs.pop("filter", None)
        if kwargs:
            raise InputError(f"delete: unknown argument(s) {', '.join(sorted(kwargs))}")
        if ids is None and where is None:
            raise InputError("delete needs ids or filter= (filter={} deletes every document)")
        self.collection.delete(ids=ids, where=where)
        return True

    # ---- reading --------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents by id, in the order asked; missing ids are left out."""
        wanted = list(dict.fromkeys(ids))
        try:
            items = self.collection.get(wanted)
        except NotFound:  # some are missing: look them up one by one
            items = []
            for doc_id in wanted:
                try:
                    items.extend(self.collection.get([doc_id]))
                except NotFound:
                    continue
        return [Document(id=it.id, page_content=it.text, metadata=it.metadata) for it in items]

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        mode: Mode = "semantic",
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Documents and scores for a text query. `mode`: "semantic", or with a collection
        that embeds itself also "keyword" (BM25) or "hybrid" (rank fusion; scores are then
        fusion scores, not cosines)."""
        if kwargs:
            raise InputError(f"unknown search argument(s) {', '.join(sorted(kwargs))}")
        if mode != "semantic" or self._native:
            hits = self.collection.search(query, k=k, where=filter, mode=mode)
        else:
            hits = self.collection.search(self._query_vector(query), k=k, where=filter)
        return [(_document(h), h.score) for h in hits]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        if kwargs:
            raise InputError(f"unknown search argument(s) {', '.join(sorted(kwargs))}")
        hits = self.collection.search(np.asarray(embedding, np.float32), k=k, where=filter)
        return [_document(h) for h in hits]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self._query_vector(query).tolist(), k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The `fetch_k` nearest documents re-ranked by embedbox's MMR: `lambda_mult` 1 is
        pure relevance, 0 pure diversity."""
        if kwargs:
            raise InputError(f"unknown search argument(s) {', '.join(sorted(kwargs))}")
        if not 0.0 <= lambda_mult <= 1.0:
            raise InputError(f"lambda_mult must be between 0 and 1, got {lambda_mult}")
        query = np.asarray(embedding, np.float32)
        hits = self.collection.search(query, k=max(k, fetch_k), where=filter)
        if not hits:
            return []
        _, candidates = self.collection.vectors(ids=[h.id for h in hits])
        return [_document(hits[i]) for i in mmr(query, candidates, k, lambda_mult)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity in [-1, 1] -> relevance in [0, 1]."""
        if not self.collection.normalize:
            raise InputError(
                "relevance scores need a cosine collection; this one ranks by dot product"
            )
        return lambda score: (score + 1.0) / 2.0

    # ---- internals ------------------------------------------------------------------------
    @property
    def _external(self) -> Embeddings:
        if self._embedding is None:  # callers check `_native` first
            raise InputError("this store embeds through its collection, not an Embeddings")
        return self._embedding

    def _query_vector(self, query: str) -> np.ndarray:
        if self._native:
            return self.collection.embedder.embed_one(query, input_type="query")
        return np.asarray(self._external.embed_query(query), np.float32)


def _document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata=hit.metadata)


def _label(embedding: Embeddings) -> str:
    """The model name recorded for a collection holding another framework's vectors."""
    model = getattr(embedding, "model", None) or getattr(embedding, "model_name", None)
    name = f"langchain:{type(embedding).__name__}"
    return f"{name}:{model}" if isinstance(model, str) and model else name
