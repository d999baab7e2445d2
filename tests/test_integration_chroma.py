"""Chroma with embedbox embeddings: a real chromadb PersistentClient on a temp dir, no network,
and Chroma's own default (downloading) embedding function never touched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2
from pytest_socket import disable_socket, enable_socket

from embedbox import Embedder, InputError
from embedbox.integrations.chroma import EmbedboxEmbeddingFunction
from tests.tolerance import assert_vectors_close

DOCS = {
    "cat": ("The cat sleeps on the warm windowsill.", {"topic": "pets"}),
    "kitten": ("A kitten chases a ball of yarn.", {"topic": "pets"}),
    "stocks": ("Stocks fell sharply on Monday morning.", {"topic": "markets"}),
    "fires": ("Bushfires burn near Sydney as temperatures soar.", {"topic": "weather"}),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No sockets, and Chroma's default ONNX embedding function (which downloads its model on
    first use) fails the test if anything calls it."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("Chroma's default embedding function was used")

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__call__", forbidden)
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "_download_model_if_not_exists", forbidden)
    disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        enable_socket()


def client(path: Path) -> chromadb.ClientAPI:
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def test_chroma_collection_embeds_with_embedbox(tmp_path: Path, embedder: Embedder) -> None:
    ef = EmbedboxEmbeddingFunction(embedder=embedder)
    col = client(tmp_path).get_or_create_collection("docs", embedding_function=ef)
    col.add(
        ids=list(DOCS),
        documents=[t for t, _ in DOCS.values()],
        metadatas=[m for _, m in DOCS.values()],
    )
    stored = col.get(ids=["cat", "stocks"], include=["embeddings"])
    want = embedder.embed([DOCS["cat"][0], DOCS["stocks"][0]])
    assert_vectors_close(np.asarray(stored["embeddings"]), want, embedder.dtype)

    res = col.query(query_texts=["a sleepy kitty"], n_results=2, include=["distances"])
    assert res["ids"][0] == ["cat", "kitten"]
    q = embedder.embed_one("a sleepy kitty", input_type="query")
    cosine = float(want[0] @ q)
    assert res["distances"] is not None
    assert abs(res["distances"][0][0] - (1.0 - cosine)) < 1e-4  # Chroma's cosine distance

    res = col.query(query_texts=["a sleepy kitty"], n_results=2, where={"topic": "markets"})
    assert res["ids"][0] == ["stocks"]
    assert col.configuration_json["embedding_function"]["name"] == "embedbox"


def test_reopened_collection_rebuilds_the_function(tmp_path: Path, embedder: Embedder) -> None:
    ef = EmbedboxEmbeddingFunction(compute="fp32")
    first = client(tmp_path).get_or_create_collection("docs", embedding_function=ef)
    first.add(ids=list(DOCS), documents=[t for t, _ in DOCS.values()])
    assert ef.get_config() == {
        "model": "all-MiniLM-L6-v2",
        "compute": "fp32",
        "device": None,
        "dimensions": None,
    }
    # A new client (as in a later process) finds "embedbox" in the stored config and rebuilds
    # the function (Chroma's default one would fail this test: see `offline`).
    again = client(tmp_path).get_collection("docs")
    assert again.configuration_json["embedding_function"]["config"] == ef.get_config()
    res = again.query(query_texts=["share prices dropped"], n_results=1)
    assert res["ids"][0] == ["stocks"]
    rebuilt = EmbedboxEmbeddingFunction.build_from_config(ef.get_config())
    assert_vectors_close(
        np.asarray(rebuilt(["A cat."])), embedder.embed(["A cat."]), embedder.dtype
    )


def test_function_options_and_errors(embedder: Embedder) -> None:
    ef = EmbedboxEmbeddingFunction(embedder=embedder, dimensions=64)
    out = ef(["A cat.", "Stocks fell."])
    assert len(out) == 2 and out[0].shape == (64,) and out[0].dtype == np.float32
    assert ef.default_space() == "cosine"
    assert EmbedboxEmbeddingFunction.name() == "embedbox"
    with pytest.raises(InputError, match="cannot change"):
        ef.validate_config_update(ef.get_config(), {"model": "all-mpnet-base-v2"})
    with pytest.raises(InputError, match="unknown compute"):
        EmbedboxEmbeddingFunction(compute="int4")  # type: ignore[arg-type]
