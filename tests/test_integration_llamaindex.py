"""LlamaIndex: a `VectorStoreIndex` over an embedbox collection, end to end on the shipped Lee
articles, and LlamaIndex `MetadataFilters` checked against LlamaIndex's own filter semantics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn
from pytest_socket import disable_socket, enable_socket

from embedbox import Collection, Embedder, InputError
from embedbox.datasets import lee_background
from embedbox.integrations.llamaindex import EmbedboxEmbedding, EmbedboxVectorStore, to_where
from tests.tolerance import assert_vectors_close

ARGENTINA = 3  # the one Lee article on the Argentine president's resignation


@pytest.fixture(autouse=True)
def no_network() -> Iterator[None]:
    """Anything that tries to download (a tokenizer, a model) fails here instead."""
    disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        enable_socket()


@pytest.fixture(scope="module")
def lee(tmp_path_factory: pytest.TempPathFactory, auto_embedder: Embedder) -> VectorStoreIndex:
    """All 300 Lee articles, split into ~200-token nodes, in an embedbox collection (embedded
    with compute="auto", as a user would: bf16 where the CPU has it)."""
    disable_socket(allow_unix_socket=True)
    try:
        store = EmbedboxVectorStore.open(
            "lee", data_dir=tmp_path_factory.mktemp("lee"), embedder=auto_embedder
        )
        docs = [
            Document(text=text, id_=f"lee-{i}", metadata={"article": i, "half": i // 150})
            for i, text in enumerate(lee_background())
        ]
        return VectorStoreIndex.from_documents(
            docs,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=EmbedboxEmbedding(embedder=auto_embedder, long_text="chunk"),
            transformations=[SentenceSplitter(chunk_size=200, chunk_overlap=20)],
        )
    finally:
        enable_socket()


@pytest.mark.slow
def test_index_retrieves_the_right_article(lee: VectorStoreIndex) -> None:
    store = lee.vector_store
    assert isinstance(store, EmbedboxVectorStore)
    info = store.client.info()
    assert info["count"] > 300  # several nodes per article
    hits = lee.as_retriever(similarity_top_k=3).retrieve(
        "Argentina's interim president resigns after only a week in office"
    )
    assert hits[0].node.ref_doc_id == f"lee-{ARGENTINA}"
    assert hits[0].node.metadata["article"] == ARGENTINA
    assert "Argentina" in hits[0].node.get_content()
    assert hits[0].score is not None and hits[0].score > hits[-1].score  # type: ignore[operator]


@pytest.mark.slow
def test_index_with_metadata_filters(lee: VectorStoreIndex) -> None:
    question = "Argentina's interim president resigns after only a week in office"
    later = MetadataFilters(filters=[MetadataFilter(key="half", value=1)])
    hits = lee.as_retriever(similarity_top_k=5, filters=later).retrieve(question)
    assert len(hits) == 5
    assert all(h.node.metadata["article"] >= 150 for h in hits)
    others = MetadataFilters(
        filters=[
            MetadataFilter(key="article", value=ARGENTINA, operator=FilterOperator.NE),
            MetadataFilter(key="article", value=[1, 2, 3, 4, 5], operator=FilterOperator.IN),
        ]
    )
    hits = lee.as_retriever(similarity_top_k=10, filters=others).retrieve(question)
    assert {h.node.metadata["article"] for h in hits} <= {1, 2, 4, 5}
    assert hits, "the filter matches four articles"


@pytest.mark.slow
def test_query_modes(lee: VectorStoreIndex, auto_embedder: Embedder) -> None:
    store = lee.vector_store
    question = "Argentina's interim president resigns after only a week in office"
    vector = auto_embedder.embed_one(question, input_type="query").tolist()
    for mode in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.HYBRID):
        result = store.query(
            VectorStoreQuery(
                query_embedding=vector, query_str=question, similarity_top_k=3, mode=mode
            )
        )
        assert result.nodes and result.nodes[0].ref_doc_id == f"lee-{ARGENTINA}", mode
    plain = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=4))
    diverse = store.query(
        VectorStoreQuery(
            query_embedding=vector,
            similarity_top_k=4,
            mode=VectorStoreQueryMode.MMR,
            mmr_threshold=0.2,
        )
    )
    assert diverse.ids and plain.ids and diverse.ids[0] == plain.ids[0]
    assert len({n.ref_doc_id for n in diverse.nodes or []}) >= len(
        {n.ref_doc_id for n in plain.nodes or []}
    )
    with pytest.raises(InputError, match="not supported"):
        store.query(VectorStoreQuery(query_embedding=vector, mode=VectorStoreQueryMode.SVM))


def test_embedding_matches_the_library(embedder: Embedder) -> None:
    model = EmbedboxEmbedding(embedder=embedder)
    texts = ["A cat sleeps.", "Stocks fell sharply."]
    got = np.array(model.get_text_embedding_batch(texts))
    assert_vectors_close(got, embedder.embed(texts), embedder.dtype)
    assert_vectors_close(
        np.array([model.get_query_embedding(texts[0])]), embedder.embed(texts[:1]), embedder.dtype
    )
    assert model.model_name == "all-MiniLM-L6-v2"


async def test_async_embedding(embedder: Embedder) -> None:
    model = EmbedboxEmbedding(embedder=embedder)
    got = await model.aget_text_embedding_batch(["A cat sleeps.", "Stocks fell."])
    query = await model.aget_query_embedding("A cat sleeps.")
    np.testing.assert_allclose(got[0], query, atol=1e-5)


# ---- filters: embedbox's where must select what LlamaIndex's own semantics select ----------
ROWS = [
    {"year": 1999, "lang": "en", "tags": ["a", "b"], "title": "x"},
    {"year": 2005, "lang": "de", "tags": ["b"], "title": ""},
    {"year": 2010, "lang": "en", "tags": ["c"]},
    {"year": 2020, "tags": ["a", "c"], "title": "y"},
]
F = MetadataFilter
FILTERS = [
    MetadataFilters(filters=[F(key="lang", value="en")]),
    MetadataFilters(filters=[F(key="lang", value="en", operator=FilterOperator.NE)]),
    MetadataFilters(filters=[F(key="year", value=2005, operator=FilterOperator.GT)]),
    MetadataFilters(filters=[F(key="year", value=2005, operator=FilterOperator.GTE)]),
    MetadataFilters(filters=[F(key="year", value=2010, operator=FilterOperator.LT)]),
    MetadataFilters(filters=[F(key="year", value=2010, operator=FilterOperator.LTE)]),
    MetadataFilters(filters=[F(key="lang", value=["de", "fr"], operator=FilterOperator.IN)]),
    MetadataFilters(filters=[F(key="lang", value=["de"], operator=FilterOperator.NIN)]),
    MetadataFilters(filters=[F(key="tags", value="a", operator=FilterOperator.CONTAINS)]),
    MetadataFilters(filters=[F(key="tags", value=["a", "c"], operator=FilterOperator.ANY)]),
    MetadataFilters(filters=[F(key="tags", value=["a", "c"], operator=FilterOperator.ALL)]),
    MetadataFilters(filters=[F(key="title", value=None, operator=FilterOperator.IS_EMPTY)]),
    MetadataFilters(
        filters=[F(key="lang", value="en"), F(key="year", value=2000, operator=FilterOperator.GT)],
        condition=FilterCondition.AND,
    ),
    MetadataFilters(
        filters=[F(key="lang", value="de"), F(key="year", value=2015, operator=FilterOperator.GT)],
        condition=FilterCondition.OR,
    ),
    MetadataFilters(
        filters=[F(key="lang", value="de"), F(key="year", value=2015, operator=FilterOperator.GT)],
        condition=FilterCondition.NOT,
    ),
]


@pytest.fixture()
def small(tmp_path: Path, embedder: Embedder) -> Iterator[EmbedboxVectorStore]:
    store = EmbedboxVectorStore.open("small", data_dir=tmp_path, embedder=embedder)
    rng = np.random.default_rng(0)
    nodes = []
    for i, meta in enumerate(ROWS):
        node = TextNode(id_=f"n{i}", text=f"row {i}", metadata=meta)
        node.embedding = rng.normal(size=embedder.dim).tolist()
        nodes.append(node)
    store.add(nodes)
    try:
        yield store
    finally:
        store.client.close()


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: repr(to_where(f)))
def test_filters_agree_with_llamaindex(
    small: EmbedboxVectorStore, filters: MetadataFilters
) -> None:
    reference = build_metadata_filter_fn(lambda node_id: ROWS[int(node_id[1:])], filters)
    want = {f"n{i}" for i in range(len(ROWS)) if reference(f"n{i}")}
    assert {n.node_id for n in small.get_nodes(filters=filters)} == want


def test_nested_filters_and_errors(small: EmbedboxVectorStore) -> None:
    nested = MetadataFilters(
        filters=[
            F(key="tags", value="c", operator=FilterOperator.CONTAINS),
            MetadataFilters(
                filters=[
                    F(key="lang", value="en"),
                    F(key="year", value=2015, operator=FilterOperator.GT),
                ],
                condition=FilterCondition.OR,
            ),
        ]
    )
    assert to_where(nested) == {
        "$and": [
            {"tags": {"$contains": "c"}},
            {"$or": [{"lang": {"$eq": "en"}}, {"year": {"$gt": 2015}}]},
        ]
    }
    assert {n.node_id for n in small.get_nodes(filters=nested)} == {"n2", "n3"}
    text_match = MetadataFilters(
        filters=[F(key="title", value="x", operator=FilterOperator.TEXT_MATCH)]
    )
    with pytest.raises(InputError, match="text_match"):
        small.get_nodes(filters=text_match)


def test_nodes_round_trip_and_delete(small: EmbedboxVectorStore, tmp_path: Path) -> None:
    got = small.get_nodes(node_ids=["n2", "gone", "n0"])
    assert [n.node_id for n in got] == ["n2", "n0"]
    assert got[1].metadata == ROWS[0]
    assert got[1].get_content() == "row 0"
    small.delete_nodes(node_ids=["n0"])
    small.delete_nodes(filters=MetadataFilters(filters=[F(key="lang", value="de")]))
    assert {n.node_id for n in small.get_nodes()} == {"n2", "n3"}
    small.clear()
    assert small.get_nodes() == []
    with pytest.raises(InputError, match="delete_nodes needs"):
        small.delete_nodes()


def test_delete_by_source_document(tmp_path: Path, embedder: Embedder) -> None:
    store = EmbedboxVectorStore.open("docs", data_dir=tmp_path, embedder=embedder)
    index = VectorStoreIndex.from_documents(
        [
            Document(text="The cat sleeps. " * 40, id_="cats"),
            Document(text="Stocks fell sharply. " * 40, id_="stocks"),
        ],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=EmbedboxEmbedding(embedder=embedder),
        transformations=[SentenceSplitter(chunk_size=60, chunk_overlap=0)],
    )
    before = {n.ref_doc_id for n in store.get_nodes()}
    assert before == {"cats", "stocks"}
    assert len(store.get_nodes()) > 2
    index.delete_ref_doc("cats")
    assert {n.ref_doc_id for n in store.get_nodes()} == {"stocks"}
    # A collection filled by embedbox itself is readable too: its documents come back as TextNodes.
    with Collection.open("plain", data_dir=tmp_path, create=True, embedder=embedder) as col:
        col.add(["A kitten naps in the sun."], ids=["k1"], metadatas=[{"src": "cli"}])
        hits = EmbedboxVectorStore(col).query(
            VectorStoreQuery(
                query_embedding=embedder.embed_one("kitten").tolist(), similarity_top_k=1
            )
        )
    assert hits.nodes and (hits.nodes[0].node_id, hits.nodes[0].metadata) == ("k1", {"src": "cli"})
    store.client.close()
