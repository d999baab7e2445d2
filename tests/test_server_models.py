"""Several models served at once: one loaded at start, one on first use; requests routed by name."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest
from fastapi import FastAPI

from embedbox import Embedder
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread
from tests.tiny_models import build

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["A cat sits on the mat.", "Stocks fell sharply on Monday."]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random nomic_bert sentence-transformers folder (32-d)."""
    return str(build("nomic_bert", tmp_path_factory.mktemp("models") / "tiny-nomic"))


@pytest.fixture(scope="module")
def served(embedder: Embedder, tiny: str) -> Iterator[tuple[FastAPI, str]]:
    settings = ServerSettings(models=(MODEL, tiny), lazy_models=(tiny,), compute="fp32")
    app = create_app(settings, preloaded={MODEL: embedder})
    with ServerThread(app) as url:
        yield app, url


def test_models_listed_and_loaded_as_configured(served: tuple[FastAPI, str], tiny: str) -> None:
    app, url = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == [MODEL, tiny]
    ready = httpx.get(url + "/ready")  # the lazy model is not needed for readiness
    assert ready.status_code == 200
    assert ready.json()["models"] == {MODEL: "ready", tiny: "not loaded"}
    assert tiny not in app.state.pool.embedders


def test_each_request_goes_to_its_model(
    served: tuple[FastAPI, str], tiny: str, embedder: Embedder
) -> None:
    _, url = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    small = client.embeddings.create(model=tiny, input=TEXTS, encoding_format="float")
    got = np.array([d.embedding for d in small.data], dtype=np.float32)
    assert small.model == tiny and got.shape == (2, 32)
    np.testing.assert_allclose(got, Embedder(tiny, compute="fp32").embed(TEXTS), atol=1e-5)
    assert httpx.get(url + "/ready").json()["models"] == {MODEL: "ready", tiny: "ready"}
    named = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    big = np.array([d.embedding for d in named.data], dtype=np.float32)
    assert named.model == MODEL and big.shape == (2, 384)
    np.testing.assert_allclose(big, embedder.embed(TEXTS), atol=1e-5)
    default = httpx.post(url + "/v1/embeddings", json={"input": TEXTS}, timeout=60).json()
    assert default["model"] == MODEL  # no model named: the first one
    np.testing.assert_allclose(np.array([d["embedding"] for d in default["data"]]), big, atol=1e-6)
    native = httpx.post(url + "/embed", json={"texts": TEXTS, "model": tiny}, timeout=60).json()
    assert native["model"] == tiny and native["dim"] == 32
    np.testing.assert_allclose(np.array(native["embeddings"]), got, atol=1e-6)


@pytest.mark.parametrize("route", ["/v1/embeddings", "/embed"])
def test_unknown_model_is_an_openai_style_404_naming_it(
    served: tuple[FastAPI, str], route: str
) -> None:
    _, url = served
    key = "input" if route == "/v1/embeddings" else "texts"
    r = httpx.post(url + route, json={key: ["hi"], "model": "no-such-model"}, timeout=30)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert "'no-such-model'" in err["message"] and MODEL in err["message"]


def test_lazy_models_must_be_served(tiny: str) -> None:
    with pytest.raises(ValueError, match="lazy_models"):
        ServerSettings(models=(MODEL,), lazy_models=(tiny,)).check()


def test_startup_line_marks_lazy_models(tiny: str) -> None:
    from embedbox.cli.serve_cmd import startup_line

    line = startup_line(ServerSettings(models=(MODEL, tiny), lazy_models=(tiny,)))
    assert f"models: {MODEL}, {tiny} (lazy)" in line
