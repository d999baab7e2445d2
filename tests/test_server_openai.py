"""The OpenAI-compatible and native embedding routes, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import openai
import pytest

from embedbox import Embedder
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread

pytestmark = pytest.mark.numerics  # also run with bf16 forced (make test)

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["A cat sits on the mat.", "Stocks fell sharply on Monday.", "The kitten sleeps."]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def server(embedder: Embedder) -> Iterator[str]:
    settings = ServerSettings(max_inputs=64, max_input_chars=5000, max_body_bytes=200_000)
    with ServerThread(create_app(settings, preloaded={MODEL: embedder})) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_openai_client_float_matches_library(client: openai.OpenAI, embedder: Embedder) -> None:
    resp = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    got = np.array([d.embedding for d in resp.data], dtype=np.float32)
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert got.shape == (3, 384)
    assert cosines(got, embedder.embed(TEXTS)).min() >= 0.9999
    assert resp.model == MODEL
    assert resp.usage.prompt_tokens == sum(embedder.count_tokens(TEXTS)) > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens


def test_openai_client_base64(client: openai.OpenAI, embedder: Embedder) -> None:
    raw = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="base64")
    got = np.stack([np.frombuffer(base64.b64decode(str(d.embedding)), "<f4") for d in raw.data])
    assert cosines(got, embedder.embed(TEXTS)).min() >= 0.9999
    # The client's default asks for base64 and decodes it itself.
    default = client.embeddings.create(model=MODEL, input=TEXTS)
    np.testing.assert_allclose(np.array([d.embedding for d in default.data]), got, atol=1e-6)


def test_openai_client_dimensions_and_single_string(
    client: openai.OpenAI, embedder: Embedder
) -> None:
    resp = client.embeddings.create(model=MODEL, input=TEXTS[0], dimensions=64)
    got = np.array([resp.data[0].embedding])
    assert got.shape == (1, 64)
    assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5
    assert cosines(got, embedder.embed(TEXTS[:1], dimensions=64)).min() >= 0.9999


def test_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as nf:
        client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model=MODEL, input=[[101, 2023, 102]])
    assert "token-id arrays are not supported" in bad.value.message
    with pytest.raises(openai.BadRequestError) as dims:
        client.embeddings.create(model=MODEL, input="hi", dimensions=4096)
    assert dims.value.param == "dimensions"
    assert [m.id for m in client.models.list()] == [MODEL]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": ["ok", "  "]}, "input[1]"),
        ({"input": []}, "input"),
        ({"input": ["x"] * 65}, "input"),
        ({"input": ["y" * 5001]}, "input[0]"),
        ({"input": 42}, "input"),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"model": MODEL}, "input"),
    ],
)
def test_bad_requests_name_the_field(server: str, body: dict[str, object], param: str) -> None:
    r = httpx.post(server + "/v1/embeddings", json=body, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param
    assert err["type"] == "invalid_request_error"
    assert param.split("[")[0] in err["message"]


def test_malformed_json_and_body_limit(server: str) -> None:
    r = httpx.post(
        server + "/v1/embeddings",
        content=b'{"input": ["a",',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]
    r = httpx.post(server + "/v1/embeddings", json={"input": ["word " * 50_000]})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts bytes
        yield b'{"input": ["'
        for _ in range(30):
            yield b"z" * 10_000
        yield b'"]}'

    r = httpx.post(server + "/v1/embeddings", content=chunks())
    assert r.status_code == 413


def test_truncation_is_reported(server: str, embedder: Embedder) -> None:
    long_text = "embedding " * 400
    r = httpx.post(server + "/v1/embeddings", json={"input": ["short", long_text]}, timeout=60)
    assert r.status_code == 200
    assert r.headers["x-embedbox-truncated"] == "1"
    r = httpx.post(server + "/embed", json={"texts": [long_text], "truncate": False}, timeout=60)
    assert r.status_code == 400
    assert "tokens" in r.json()["error"]["message"]


def test_native_embed_and_similarity(server: str, embedder: Embedder) -> None:
    r = httpx.post(
        server + "/embed",
        json={"texts": TEXTS, "dimensions": 32, "encoding_format": "base64"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    got = np.stack([np.frombuffer(base64.b64decode(e), "<f4") for e in out["embeddings"]])
    assert out["dim"] == 32 and got.shape == (3, 32)
    assert cosines(got, embedder.embed(TEXTS, dimensions=32)).min() >= 0.9999
    assert out["token_counts"] == embedder.count_tokens(TEXTS)
    r = httpx.post(server + "/similarity", json={"a": TEXTS, "b": ["a little cat"]}, timeout=60)
    scores = np.array(r.json()["scores"])
    expected = embedder.similarity(TEXTS, ["a little cat"])
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert scores[:, 0].argmax() in (0, 2) and scores[1, 0] < scores[0, 0]


def test_health_ready_metrics(server: str) -> None:
    assert httpx.get(server + "/health").json() == {"status": "ok"}
    ready = httpx.get(server + "/ready")
    assert ready.status_code == 200 and ready.json()["models"] == {MODEL: "ready"}
    text = httpx.get(server + "/metrics").text
    assert 'embedbox_requests_total{method="POST",route="/v1/embeddings",status="200"}' in text
    assert "embedbox_batch_inputs_bucket" in text
    assert f'embedbox_tokens_embedded_total{{model="{MODEL}"}}' in text
    assert f'embedbox_queue_depth{{model="{MODEL}"}}' in text


def test_32_concurrent_clients_get_their_own_results_in_order(
    server: str, embedder: Embedder
) -> None:
    words = ["river", "bank", "money", "tree", "cloud", "piano", "engine", "bread"]
    requests = [
        [f"{words[(c + i) % 8]} number {c}-{i}" for i in range(1 + c % 5)] for c in range(32)
    ]
    reference = embedder.embed([t for req in requests for t in req])
    before = _metric(server, "embedbox_batch_requests_count")
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def client(c: int) -> None:
        try:
            with httpx.Client(timeout=60) as http:
                barrier.wait()
                for _ in range(3):
                    r = http.post(server + "/v1/embeddings", json={"input": requests[c]})
                    r.raise_for_status()
                    data = r.json()["data"]
                    assert [d["index"] for d in data] == list(range(len(requests[c])))
                    results[c] = np.array([d["embedding"] for d in data])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    start = 0
    for c, req in enumerate(requests):
        expect = reference[start : start + len(req)]
        start += len(req)
        assert cosines(results[c], expect).min() >= 0.9999, f"client {c} got someone else's vectors"
    batches = _metric(server, "embedbox_batch_requests_count") - before
    assert batches < 96, "96 concurrent requests should have been merged into fewer batches"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll for a state change (no fixed sleeps: a loaded machine only makes this slower)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_overload_gives_503_with_retry_after_and_timeouts_504(embedder: Embedder) -> None:
    settings = ServerSettings(max_queue=1, request_timeout_s=1.5)
    app = create_app(settings, preloaded={MODEL: embedder})
    codes: dict[str, int] = {}

    def send(name: str) -> None:
        r = httpx.post(url + "/v1/embeddings", json={"input": [name]}, timeout=60)
        codes[name] = r.status_code

    with ServerThread(app) as url:
        batcher = app.state.pool.batchers[MODEL]
        # The model stays busy while the lock is held: nothing can finish, whatever the timing.
        with embedder._lock:
            first = threading.Thread(target=send, args=("first",))
            first.start()
            wait_until(lambda: batcher.computing == 1, "the worker has taken the first request")
            second = threading.Thread(target=send, args=("second",))
            second.start()
            wait_until(lambda: batcher.queue.qsize() == 1, "the second request fills the queue")
            r = httpx.post(url + "/v1/embeddings", json={"input": ["third"]}, timeout=60)
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "overloaded"
            first.join()
            second.join()
        assert codes == {"first": 504, "second": 504}
        # The timed-out requests still drain once the model is free; then the server recovers.
        wait_until(
            lambda: batcher.computing == 0 and batcher.queue.qsize() == 0, "the queue has drained"
        )
        r = httpx.post(url + "/v1/embeddings", json={"input": ["after"]}, timeout=60)
        assert r.status_code == 200


def _metric(server: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(server + "/metrics").text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_ready_turns_503_when_the_worker_dies(embedder: Embedder) -> None:
    app = create_app(ServerSettings(), preloaded={MODEL: embedder})
    with ServerThread(app) as url:
        assert httpx.get(url + "/ready").status_code == 200
        batcher = app.state.pool.batchers[MODEL]
        loop = batcher._task.get_loop()
        loop.call_soon_threadsafe(batcher._task.cancel)
        deadline = time.monotonic() + 10
        while batcher.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        r = httpx.get(url + "/ready")
        assert r.status_code == 503
        assert r.json() == {"ready": False, "models": {MODEL: "worker stopped"}}
        r = httpx.post(url + "/v1/embeddings", json={"input": "x"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_vectors_json_is_exact_for_float32_and_valid_json() -> None:
    import json

    from embedbox.server.service import vectors_json

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3, 384)).astype(np.float32) * np.float32(1e-3)
    vecs[0, :3] = [0.0, -0.0, 1.0]
    rows = vectors_json(vecs, "float")
    back = np.array([json.loads(r) for r in rows], dtype=np.float32)
    assert np.array_equal(back, vecs)  # float32 round-trips bit for bit
    assert sum(map(len, rows)) < len(json.dumps(vecs.astype(np.float64).tolist()))
    b64 = [json.loads(r) for r in vectors_json(vecs, "base64")]
    assert np.array_equal(np.frombuffer(base64.b64decode(b64[1]), "<f4"), vecs[1])
