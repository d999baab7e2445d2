"""LangChain: langchain-tests' standard suites (unmodified) plus behaviour the suites don't cover:
filters applied before ranking, scores, MMR, retrievers, interop with plain embedbox collections,
and langchain-openai's `OpenAIEmbeddings` against a real `embedbox serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_openai import OpenAIEmbeddings
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    VectorStoreIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests

from embedbox import Collection, Embedder, InputError
from embedbox.integrations.langchain import EmbedboxEmbeddings, EmbedboxVectorStore
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread
from tests.tolerance import assert_vectors_close

MODEL = "all-MiniLM-L6-v2"
PETS = [
    ("The cat sleeps on the warm windowsill.", {"topic": "pets", "year": 1999}),
    ("A kitten chases a ball of yarn.", {"topic": "pets", "year": 2005}),
    ("Stocks fell sharply on Monday morning.", {"topic": "markets", "year": 2008}),
    ("The central bank raised interest rates.", {"topic": "markets", "year": 2019}),
    ("Bushfires burn near Sydney as temperatures soar.", {"topic": "weather", "year": 2001}),
]


# ---- the standard suites -------------------------------------------------------------------
class TestEmbedboxEmbeddingsUnit(EmbeddingsUnitTests):
    @pytest.fixture(autouse=True)
    def _shared(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @property
    def embeddings_class(self) -> type[EmbedboxEmbeddings]:
        return EmbedboxEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"embedder": self.embedder}


class TestEmbedboxEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _shared(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @property
    def embeddings_class(self) -> type[EmbedboxEmbeddings]:
        return EmbedboxEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"embedder": self.embedder}


@pytest.fixture(scope="module")
def server(embedder: Embedder) -> Iterator[str]:
    with ServerThread(create_app(ServerSettings(), preloaded={MODEL: embedder})) as url:
        yield url


def openai_params(url: str) -> dict[str, Any]:
    """What `OpenAIEmbeddings` needs to talk to `embedbox serve`: raw text, not tiktoken ids
    (the server takes text; tiktoken would also download its vocabulary)."""
    return {
        "model": MODEL,
        "base_url": url + "/v1",
        "api_key": "unused",
        "check_embedding_ctx_length": False,
        "max_retries": 0,
    }


class TestOpenAIEmbeddingsAgainstServer(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _server(self, server: str) -> None:
        self.url = server

    @property
    def embeddings_class(self) -> type[OpenAIEmbeddings]:
        return OpenAIEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return openai_params(self.url)


class TestEmbedboxVectorStore(VectorStoreIntegrationTests):
    """The suite as prescribed: the store holds the suite's own fake embeddings."""

    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Iterator[EmbedboxVectorStore]:
        store = EmbedboxVectorStore.open("lc", self.get_embeddings(), data_dir=tmp_path)
        try:
            yield store
        finally:
            store.collection.close()


class TestEmbedboxVectorStoreSelfEmbedding(VectorStoreIntegrationTests):
    """The same suite with the collection embedding texts and queries itself (MiniLM)."""

    @pytest.fixture()
    def vectorstore(self, tmp_path: Path, embedder: Embedder) -> Iterator[EmbedboxVectorStore]:
        col = Collection.open("lc", data_dir=tmp_path, create=True, embedder=embedder)
        try:
            yield EmbedboxVectorStore(col)
        finally:
            col.close()


# ---- beyond the suites ---------------------------------------------------------------------
@pytest.fixture()
def pets(tmp_path: Path, embedder: Embedder) -> Iterator[EmbedboxVectorStore]:
    store = EmbedboxVectorStore.from_texts(
        [t for t, _ in PETS],
        EmbedboxEmbeddings(embedder=embedder),
        [m for _, m in PETS],
        ids=[f"d{i}" for i in range(len(PETS))],
        collection_name="pets",
        data_dir=tmp_path,
    )
    try:
        yield store
    finally:
        store.collection.close()


def test_embeddings_match_the_library(embedder: Embedder) -> None:
    lc = EmbedboxEmbeddings(embedder=embedder)
    texts = [t for t, _ in PETS]
    assert_vectors_close(np.array(lc.embed_documents(texts)), embedder.embed(texts), embedder.dtype)
    assert_vectors_close(
        np.array([lc.embed_query(texts[0])]), embedder.embed(texts[:1]), embedder.dtype
    )
    assert lc.model == MODEL
    short = EmbedboxEmbeddings(embedder=embedder, dimensions=64).embed_query("a cat")
    assert len(short) == 64
    assert abs(float(np.linalg.norm(short)) - 1.0) < 1e-5


def test_openai_embeddings_against_server_match_library(server: str, embedder: Embedder) -> None:
    client = OpenAIEmbeddings(**openai_params(server))
    texts = [t for t, _ in PETS]
    got = np.array(client.embed_documents(texts), np.float32)
    assert_vectors_close(got, embedder.embed(texts), embedder.dtype)
    short = OpenAIEmbeddings(**openai_params(server), dimensions=128).embed_query("a cat")
    assert len(short) == 128


def test_from_texts_makes_a_plain_embedbox_collection(
    pets: EmbedboxVectorStore, tmp_path: Path, embedder: Embedder
) -> None:
    info = pets.collection.info()
    assert (info["model"], info["kind"], info["count"]) == (MODEL, "text", len(PETS))
    # The same collection from embedbox itself (CLI, server, library) sees LangChain's documents.
    with Collection.open("pets", data_dir=tmp_path, embedder=embedder) as col:
        hit = col.search("a sleepy cat", k=1)[0]
    assert (hit.id, hit.metadata) == ("d0", PETS[0][1])
    assert isinstance(pets.embeddings, EmbedboxEmbeddings)


def test_filters_apply_before_ranking(pets: EmbedboxVectorStore) -> None:
    docs = pets.similarity_search("a sleepy cat", k=3, filter={"topic": "markets"})
    assert {d.id for d in docs} == {"d2", "d3"}  # only two match, though cats rank higher
    docs = pets.similarity_search("cat", k=5, filter={"year": {"$gte": 2001, "$lt": 2010}})
    assert {d.id for d in docs} == {"d1", "d2", "d4"}
    docs = pets.similarity_search(
        "cat", k=5, filter={"$or": [{"topic": "weather"}, {"year": {"$lt": 2000}}]}
    )
    assert {d.id for d in docs} == {"d0", "d4"}
    with pytest.raises(InputError, match="unknown operator"):
        pets.similarity_search("cat", filter={"year": {"$between": [1, 2]}})


def test_scores_are_cosines(pets: EmbedboxVectorStore, embedder: Embedder) -> None:
    query = "kittens playing"
    pairs = pets.similarity_search_with_score(query, k=5)
    assert pairs[0][0].id == "d1"
    q = embedder.embed([query])[0]
    texts = dict(PETS)
    for doc, score in pairs:
        want = float(embedder.embed([doc.page_content])[0] @ q)
        assert abs(score - want) < 1e-4, doc.id
        assert doc.metadata == texts[doc.page_content]
    relevance = pets.similarity_search_with_relevance_scores(query, k=5)
    assert all(0.0 <= r <= 1.0 for _, r in relevance)
    assert [round(r, 6) for _, r in relevance] == [round((s + 1) / 2, 6) for _, s in pairs]


def test_keyword_and_hybrid_modes(pets: EmbedboxVectorStore) -> None:
    docs = pets.similarity_search("interest rates", k=1, mode="keyword")
    assert [d.id for d in docs] == ["d3"]
    docs = pets.similarity_search("Sydney bushfires", k=2, mode="hybrid")
    assert docs[0].id == "d4"


def test_mmr_trades_relevance_for_diversity(tmp_path: Path, embedder: Embedder) -> None:
    texts = [
        "The cat sat on the mat.",
        "The cat sat on the mat!",
        "A cat was sitting on the mat.",
        "Dogs bark at the mailman.",
        "The stock market crashed.",
    ]
    store = EmbedboxVectorStore.from_texts(
        texts, EmbedboxEmbeddings(embedder=embedder), collection_name="mmr", data_dir=tmp_path
    )
    plain = store.similarity_search("cat on the mat", k=3)
    assert {d.page_content for d in plain} == set(texts[:3])
    diverse = store.max_marginal_relevance_search("cat on the mat", k=3, fetch_k=5, lambda_mult=0.3)
    assert diverse[0].page_content in texts[:3]
    assert {d.page_content for d in diverse} & set(texts[3:]), "MMR kept only near-duplicates"
    same = store.max_marginal_relevance_search("cat on the mat", k=3, fetch_k=5, lambda_mult=1.0)
    assert [d.page_content for d in same] == [d.page_content for d in plain]
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5})
    assert len(retriever.invoke("cat on the mat")) == 2
    with pytest.raises(InputError, match="lambda_mult"):
        store.max_marginal_relevance_search("cat", lambda_mult=1.5)
    store.collection.close()


def test_retriever_with_filter_and_threshold(pets: EmbedboxVectorStore) -> None:
    retriever = pets.as_retriever(search_kwargs={"k": 2, "filter": {"topic": "pets"}})
    docs = retriever.invoke("a cat")
    assert {d.id for d in docs} == {"d0", "d1"}
    assert all(isinstance(d, Document) for d in docs)
    strict = pets.as_retriever(
        search_type="similarity_score_threshold",
        search_kwargs={"k": 5, "score_threshold": 0.75},
    )
    kept = strict.invoke("a cat sleeping by the window")
    assert [d.id for d in kept] == ["d0"]


def test_get_delete_and_errors(pets: EmbedboxVectorStore) -> None:
    got = pets.get_by_ids(["d3", "nope", "d0", "d3"])
    assert [d.id for d in got] == ["d3", "d0"]
    assert got[0].page_content == PETS[3][0]
    assert pets.delete(filter={"topic": "markets"}) is True
    assert pets.get_by_ids(["d2", "d3"]) == []
    assert pets.delete(["d0", "missing"]) is True
    assert len(pets.collection) == 2
    with pytest.raises(InputError, match="delete needs ids or filter"):
        pets.delete()
    with pytest.raises(InputError, match="unknown"):
        pets.similarity_search("cat", k=1, fetch_k=3)


def test_other_embeddings_get_a_vectors_collection(tmp_path: Path) -> None:
    fake = DeterministicFakeEmbedding(size=16)
    store = EmbedboxVectorStore.from_texts(
        ["alpha", "beta"], fake, [{"n": 1}, {"n": 2}], collection_name="fake", data_dir=tmp_path
    )
    info = store.collection.info()
    assert (info["kind"], info["dim"], info["model"]) == (
        "vectors",
        16,
        "langchain:DeterministicFakeEmbedding",
    )
    assert store.similarity_search("beta", k=1)[0].metadata == {"n": 2}
    assert (
        store.similarity_search_by_vector(fake.embed_query("alpha"), k=1)[0].page_content == "alpha"
    )
    with pytest.raises(InputError, match="vectors"):
        store.similarity_search("beta", k=1, mode="hybrid")  # no text model to embed with
    store.collection.close()
