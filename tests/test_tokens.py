"""Contextual token vectors: the same word gets different vectors in different contexts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from embedbox import Embedder
from embedbox.cli.common import app
from embedbox.errors import InputError, TruncationError
from embedbox.tasks.tokens import embed_tokens
from embedbox.words import load_words

pytestmark = pytest.mark.numerics  # also run with bf16 forced (make test)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_tokens_offsets_and_shapes(embedder: Embedder) -> None:
    text = "I sat on the river bank."
    tv = embed_tokens(text, embedder)
    assert tv.tokens == ["i", "sat", "on", "the", "river", "bank", "."]
    assert [text[s:e] for s, e in tv.offsets] == ["I", "sat", "on", "the", "river", "bank", "."]
    assert tv.vectors.shape == (7, 384) and tv.vectors.dtype == np.float32
    unit = embed_tokens(text, embedder, normalize=True)
    assert np.allclose(np.linalg.norm(unit.vectors, axis=1), 1.0, atol=1e-5)


RIVER = [
    "river bank",
    "We had a picnic on the river bank.",
    "Fish swam near the muddy bank of the river.",
    "The grassy bank sloped down to the water.",
]
MONEY = [
    "bank loan",
    "The bank approved my loan application.",
    "I opened a savings account at the bank.",
]


def test_bank_differs_by_context_unlike_glove(embedder: Embedder) -> None:
    texts = RIVER + MONEY
    vecs = np.stack([embed_tokens(t, embedder, normalize=True).vector("bank") for t in texts])
    sims = vecs @ vecs.T
    sense = np.array([0] * len(RIVER) + [1] * len(MONEY))
    same = sense[:, None] == sense[None, :]
    off_diag = ~np.eye(len(texts), dtype=bool)
    within = float(sims[same & off_diag].mean())
    across = float(sims[~same].mean())
    assert within - across > 0.08, (within, across)  # measured: 0.86 vs 0.72
    assert sims[0, len(RIVER)] < 0.85  # "river bank" vs "bank loan"
    np.fill_diagonal(sims, -1)
    assert (sense[sims.argmax(axis=1)] == sense).all()  # nearest other "bank" has the same sense
    glove = load_words()
    static = [glove.phrase_vector(t).shape for t in ("bank",)]
    assert static == [(50,)] and np.array_equal(glove.vector("bank"), glove.vector("Bank"))


def test_word_level_pools_word_pieces(embedder: Embedder) -> None:
    text = "Tokenization splits unbelievably long words."
    pieces = embed_tokens(text, embedder)
    words = embed_tokens(text, embedder, level="word")
    assert len(pieces.tokens) > len(words.tokens)
    assert words.tokens == ["Tokenization", "splits", "unbelievably", "long", "words", "."]
    first = [i for i, (s, _) in enumerate(pieces.offsets) if s < len("Tokenization")]
    assert np.allclose(words.vectors[0], pieces.vectors[first].mean(axis=0), atol=1e-5)


def test_errors_name_the_problem(embedder: Embedder) -> None:
    with pytest.raises(InputError, match="non-empty"):
        embed_tokens("  ", embedder)
    with pytest.raises(TruncationError, match="truncate=True"):
        embed_tokens("word " * 400, embedder)
    assert len(embed_tokens("word " * 400, embedder, truncate=True).tokens) == 254
    with pytest.raises(InputError, match="not a token"):
        embed_tokens("river bank", embedder).vector("loan")


@pytest.mark.model
def test_cli_tokens_json() -> None:
    result = CliRunner().invoke(app, ["tokens", "river bank", "--json", "--words"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["token"] for t in data["tokens"]] == ["river", "bank"]
    assert data["tokens"][1]["start"] == 6 and len(data["tokens"][1]["vector"]) == 384
