"""The text engine against the reference: sentence-transformers on the same shipped weights."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from embedbox import Embedder, InputError, TruncationError, TruncationWarning
from embedbox.datasets import lee_background, sts_b
from embedbox.quantize import dequantize, hamming_similarity

pytestmark = pytest.mark.numerics  # also run with bf16 forced (make test)


def varied_texts() -> list[str]:
    """>= 500 real texts from one word to well beyond 256 tokens."""
    sentences = [p.a for p in sts_b("test")[:380]]
    words = sorted({w.strip(".,") for s in sentences[:200] for w in s.split() if w.isalpha()})[:60]
    articles = lee_background()[:80]
    return words + sentences + articles


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return varied_texts()


@pytest.fixture(scope="module")
def reference(embedder: Embedder, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(embedder.info.path), device="cpu")
    return np.asarray(st.encode(texts, batch_size=32, convert_to_numpy=True))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(1))


def test_texts_span_short_to_beyond_max(embedder: Embedder, texts: list[str]) -> None:
    counts = embedder.count_tokens(texts)
    assert len(texts) >= 500
    assert min(counts) <= 3 and max(counts) > 256
    assert sum(c > 256 for c in counts) >= 20


def test_fp32_parity_with_sentence_transformers(
    embedder: Embedder, texts: list[str], reference: np.ndarray
) -> None:
    ours = embedder.embed(texts, truncate=False)
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cosines(ours, reference).min() >= 0.99999


def test_auto_parity_with_sentence_transformers(
    auto_embedder: Embedder, texts: list[str], reference: np.ndarray
) -> None:
    ours = auto_embedder.embed(texts, truncate=False)
    assert cosines(ours, reference).min() >= 0.999


def test_padding_invariance(embedder: Embedder) -> None:
    short = "A man is playing a guitar."
    alone = embedder.embed([short])
    batch = embedder.embed([*lee_background()[:8], short])
    assert np.abs(batch[-1] - alone[0]).max() <= 1e-5


@pytest.mark.model
@pytest.mark.parametrize("fixture", ["embedder", "auto_embedder"])
def test_sts_b_spearman(fixture: str, request: pytest.FixtureRequest) -> None:
    emb: Embedder = request.getfixturevalue(fixture)
    pairs = sts_b("test")
    a = emb.embed([p.a for p in pairs])
    b = emb.embed([p.b for p in pairs])
    rho = spearmanr((a * b).sum(1), [p.score for p in pairs]).statistic
    assert rho >= 0.815, f"{fixture}: Spearman {rho:.4f}"


def test_empty_list_gives_zero_rows(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.embed([], dimensions=64).shape == (0, 64)
    assert embedder.embed([], dimensions=64, precision="int8").shape == (0, 64)
    assert embedder.embed([], precision="binary").shape == (0, 48)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["fine", ""], "item 1 is empty"),
        (["fine", "   \n"], "item 1 is empty"),
        (["fine", None], "item 1 is None"),
        ([3.5], "item 0 is float"),
        ("just a string", "list of texts"),
    ],
)
def test_bad_inputs_name_the_item(embedder: Embedder, bad: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        embedder.embed(bad)  # type: ignore[arg-type]


def test_allow_empty_opt_in(embedder: Embedder) -> None:
    assert embedder.embed(["", "x"], allow_empty=True).shape == (2, 384)


def test_bad_options(embedder: Embedder) -> None:
    with pytest.raises(InputError, match="dimensions must be between 1 and 384"):
        embedder.embed(["x"], dimensions=500)
    with pytest.raises(InputError, match="unknown precision 'int4'"):
        embedder.embed(["x"], precision="int4")
    with pytest.raises(InputError, match="unknown prompt_name 'query'"):
        embedder.embed(["x"], prompt_name="query")
    with pytest.raises(InputError, match="no task adapters"):
        embedder.embed(["x"], task="retrieval.query")


def test_truncation_is_reported(embedder: Embedder) -> None:
    long_text = " ".join(lee_background()[:3])
    with pytest.warns(TruncationWarning, match=r"1 of 2 texts exceed 256 tokens.*items 1"):
        result = embedder.encode(["short", long_text])
    assert result.truncated == [1]
    assert result.token_counts[1] > 256
    with pytest.raises(TruncationError, match=r"item 1 has \d+ tokens, more than the model's 256"):
        embedder.embed(["short", long_text], truncate="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.embed(["short", long_text], truncate=False)  # silent, still in the info


def test_chunking_represents_the_whole_document(embedder: Embedder) -> None:
    articles = lee_background()
    doc = " ".join(articles[:40])  # thousands of tokens; the tail is about other news
    assert embedder.count_tokens([doc])[0] > 5000
    tail = articles[39]
    result = embedder.encode([doc], long_text="chunk")
    assert result.chunked[0] >= 20 and result.truncated == []
    chunked = result.vectors[0]
    truncated = embedder.embed([doc], truncate=False)[0]
    tail_vec = embedder.embed([tail])[0]
    assert float(chunked @ tail_vec) > float(truncated @ tail_vec) + 0.05
    assert abs(float(np.linalg.norm(chunked)) - 1) < 1e-5


def test_int8_with_matryoshka_uses_its_own_calibration(embedder: Embedder) -> None:
    texts = [p.a for p in sts_b("test")[:50]]
    q = embedder.embed(texts, dimensions=128, precision="int8")
    assert q.shape == (50, 128) and q.dtype == np.int8
    back = dequantize(q, "int8", embedder._calibration("int8", 128))
    ref = embedder.embed(texts, dimensions=128)
    assert cosines(back, ref).min() > 0.99


def test_matryoshka_dimensions(embedder: Embedder) -> None:
    full = embedder.embed(["a cat sits on the mat"])
    short = embedder.embed(["a cat sits on the mat"], dimensions=128)
    assert short.shape == (1, 128)
    expected = full[:, :128] / np.linalg.norm(full[:, :128])
    np.testing.assert_allclose(short, expected, atol=1e-6)


def test_output_precisions_keep_ranking(embedder: Embedder) -> None:
    pairs = sts_b("test")[:300]
    gold = [p.score for p in pairs]
    a32 = embedder.embed([p.a for p in pairs])
    b32 = embedder.embed([p.b for p in pairs])
    base = spearmanr((a32 * b32).sum(1), gold).statistic

    a16 = embedder.embed([p.a for p in pairs], precision="float16")
    assert a16.dtype == np.float16
    a8 = embedder.embed([p.a for p in pairs], precision="int8")
    b8 = embedder.embed([p.b for p in pairs], precision="int8")
    assert a8.dtype == np.int8 and a8.shape == (300, 384)
    cal = embedder._calibration("int8")
    rho8 = spearmanr((dequantize(a8, "int8", cal) * dequantize(b8, "int8", cal)).sum(1), gold)
    assert rho8.statistic > base - 0.01

    abin = embedder.embed([p.a for p in pairs], precision="binary")
    bbin = embedder.embed([p.b for p in pairs], precision="binary")
    assert abin.shape == (300, 48) and abin.dtype == np.int8
    ham = np.array(
        [hamming_similarity(x[None], y[None])[0, 0] for x, y in zip(abin, bbin, strict=True)]
    )
    assert spearmanr(ham, gold).statistic > base - 0.08


def test_similarity_matrix(embedder: Embedder) -> None:
    m = embedder.similarity(["a cat", "a kitten", "stock market crash"])
    assert m.shape == (3, 3)
    assert m[0, 1] > 0.6 and m[0, 2] < 0.2
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-5)


def test_embed_one(embedder: Embedder) -> None:
    v = embedder.embed_one("hello")
    assert v.shape == (384,)
    with pytest.raises(InputError):
        embedder.embed_one(["hello"])  # type: ignore[arg-type]


def test_progress_callback(embedder: Embedder) -> None:
    seen: list[tuple[int, int]] = []
    embedder.embed([p.a for p in sts_b("test")[:300]], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (300, 300)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
