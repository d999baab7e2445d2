"""The sentence-transformers adapter: every snippet runs against the real `SentenceTransformer`
and against `embedbox.integrations.st_compat.SentenceTransformer` (fp32), and the outputs must
match in type, dtype, shape and value."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentence_transformers
import torch

from embedbox import Embedder, InputError
from embedbox.integrations import st_compat
from tests.tolerance import FP32_ATOL

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
]
Snippet = Callable[[Any], Any]

SNIPPETS: dict[str, Snippet] = {
    "one string": lambda m: m.encode("A single sentence."),
    "list": lambda m: m.encode(TEXTS),
    "common keywords": lambda m: m.encode(
        TEXTS,
        batch_size=3,
        show_progress_bar=True,
        normalize_embeddings=True,
        convert_to_numpy=True,
    ),
    "tensor": lambda m: m.encode(TEXTS, convert_to_tensor=True),
    "one string tensor": lambda m: m.encode("hello", convert_to_tensor=True),
    "list of tensors": lambda m: m.encode(TEXTS[:3], convert_to_numpy=False),
    "truncate_dim": lambda m: m.encode(TEXTS, truncate_dim=64),
    "truncate_dim normalized": lambda m: m.encode(
        TEXTS, truncate_dim=64, normalize_embeddings=True
    ),
    "int8": lambda m: m.encode(TEXTS, precision="int8"),
    "uint8": lambda m: m.encode(TEXTS, precision="uint8"),
    "binary": lambda m: m.encode(TEXTS, precision="binary"),
    "ubinary tensor": lambda m: m.encode(TEXTS, precision="ubinary", convert_to_tensor=True),
    "prompt": lambda m: m.encode(TEXTS[:2], prompt="query: "),
    "encode_query": lambda m: m.encode_query(TEXTS[:2]),
    "encode_document": lambda m: m.encode_document(TEXTS[:2]),
    "empty list": lambda m: m.encode([]),
    "empty list tensor": lambda m: m.encode([], convert_to_tensor=True),
    "empty list no numpy": lambda m: m.encode([], convert_to_numpy=False),
    "numpy input": lambda m: m.encode(np.array(TEXTS[:2])),
    "tuple input": lambda m: m.encode(tuple(TEXTS[:2])),
    "empty string": lambda m: m.encode(["", "x"]),
    "long text": lambda m: m.encode(["word " * 400, "short"]),
    "keyword inputs": lambda m: (
        m.encode(sentences=TEXTS[:2])
        if isinstance(m, st_compat.SentenceTransformer)
        else m.encode(inputs=TEXTS[:2])
    ),
    "similarity": lambda m: m.similarity(m.encode(TEXTS), m.encode(TEXTS[:3])),
    "similarity of tensors": lambda m: m.similarity(
        m.encode(TEXTS[:2], convert_to_tensor=True), m.encode("x", convert_to_tensor=True)
    ),
    "similarity_pairwise": lambda m: m.similarity_pairwise(
        m.encode(TEXTS[:4]), m.encode(TEXTS[4:])
    ),
    "dimension": lambda m: m.get_sentence_embedding_dimension(),
    "dimension truncated": lambda m: (m.truncate_dim, m.get_embedding_dimension()),
    "attributes": lambda m: (
        m.max_seq_length,
        m.similarity_fn_name,
        m.prompts,
        m.default_prompt_name,
    ),
    "device": lambda m: str(m.device),
    "tokenize": lambda m: m.tokenize(TEXTS[:2])["input_ids"],
}


def run(model: Any, snippet: Snippet) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation / deprecation notices differ by design
        return snippet(model)


def assert_same(got: Any, want: Any, where: str) -> None:
    assert type(got) is type(want), f"{where}: {type(got).__name__} vs {type(want).__name__}"
    if isinstance(want, list | tuple):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
        return
    if isinstance(want, torch.Tensor):
        assert (got.dtype, got.device) == (want.dtype, want.device), where
        got, want = got.numpy(), want.numpy()
    if isinstance(want, np.ndarray):
        assert (got.dtype, got.shape) == (want.dtype, want.shape), (
            f"{where}: {got.dtype}{got.shape}"
        )
        if want.dtype in (np.int8, np.uint8):
            # A value a rounding away from a bucket edge may land in the neighbouring bucket.
            bits = np.unpackbits if "binary" in where else None
            g, w = (bits(got.view(np.uint8)), bits(want.view(np.uint8))) if bits else (got, want)
            diff = np.abs(g.astype(np.int16) - w.astype(np.int16))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.005, f"{where}: {diff.max()}"
        elif want.dtype.kind in "iu":
            np.testing.assert_array_equal(got, want, err_msg=where)
        else:
            np.testing.assert_allclose(got, want, atol=FP32_ATOL, err_msg=where)
        return
    assert got == want, where


@pytest.fixture(scope="module")
def reference(embedder: Embedder) -> sentence_transformers.SentenceTransformer:
    return sentence_transformers.SentenceTransformer(str(embedder.info.path), device="cpu")


@pytest.mark.parametrize("name", list(SNIPPETS))
def test_snippet_matches_sentence_transformers(
    name: str, embedder: Embedder, reference: sentence_transformers.SentenceTransformer
) -> None:
    ours = st_compat.SentenceTransformer(embedder=embedder)
    assert_same(run(ours, SNIPPETS[name]), run(reference, SNIPPETS[name]), name)


@pytest.fixture(scope="module")
def prompted(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """The MiniLM folder with prompts and a default prompt in its sentence-transformers config."""
    folder = tmp_path_factory.mktemp("prompted") / "minilm"
    shutil.copytree(embedder.info.path, folder)
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": {"query": "query: ", "passage": "passage: ", "classify": "topic: "},
                "default_prompt_name": "classify",
                "similarity_fn_name": "dot",
            }
        )
    )
    return folder


PROMPT_SNIPPETS: dict[str, Snippet] = {
    "default prompt": lambda m: m.encode(TEXTS[:2]),
    "prompt_name": lambda m: m.encode(TEXTS[:2], prompt_name="query"),
    "prompt beats prompt_name": lambda m: m.encode(TEXTS[:2], prompt="x: ", prompt_name="query"),
    "empty prompt": lambda m: m.encode(TEXTS[:2], prompt=""),
    "encode_query": lambda m: m.encode_query(TEXTS[:2]),
    "encode_document": lambda m: m.encode_document(TEXTS[:2]),
    "attributes": lambda m: (m.prompts, m.default_prompt_name, m.similarity_fn_name),
    "dot similarity": lambda m: m.similarity(m.encode(TEXTS[:3]), m.encode(TEXTS[3:5])),
}


@pytest.fixture(scope="module")
def prompted_pair(prompted: Path) -> tuple[Any, Any]:
    ours = st_compat.SentenceTransformer(str(prompted), device="cpu", compute="fp32")
    return ours, sentence_transformers.SentenceTransformer(str(prompted), device="cpu")


@pytest.mark.parametrize("name", list(PROMPT_SNIPPETS))
def test_prompts_match_sentence_transformers(name: str, prompted_pair: tuple[Any, Any]) -> None:
    ours, ref = prompted_pair
    assert_same(run(ours, PROMPT_SNIPPETS[name]), run(ref, PROMPT_SNIPPETS[name]), name)


def test_user_prompts_merge_like_sentence_transformers(prompted: Path) -> None:
    kwargs: dict[str, Any] = {
        "prompts": {"query": "Q: ", "extra": "E: "},
        "default_prompt_name": None,
    }
    ref = sentence_transformers.SentenceTransformer(str(prompted), device="cpu", **kwargs)
    ours = st_compat.SentenceTransformer(str(prompted), device="cpu", compute="fp32", **kwargs)

    def snippet(m: Any) -> Any:
        return m.prompts, m.default_prompt_name, m.encode(TEXTS[:2], prompt_name="extra")

    assert_same(run(ours, snippet), run(ref, snippet), "user prompts")


def test_max_seq_length_and_truncate_context(embedder: Embedder) -> None:
    ours = st_compat.SentenceTransformer(embedder=embedder)
    with ours.truncate_sentence_embeddings(32):
        assert ours.encode("a cat").shape == (32,)
    assert ours.encode("a cat").shape == (384,)
    ours.max_seq_length = 16
    assert ours.max_seq_length == 16
    ref = sentence_transformers.SentenceTransformer(str(embedder.info.path), device="cpu")
    ref.max_seq_length = 16
    long = ["a fairly long sentence that certainly has more than sixteen word piece tokens in it"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(ours.encode(long), ref.encode(long), "max_seq_length=16")
    assert ours.embedder is not embedder  # reloaded with the new window; the fixture is intact
    assert embedder.max_tokens == 256


def test_clear_errors(embedder: Embedder) -> None:
    ours = st_compat.SentenceTransformer(embedder=embedder)
    with pytest.raises(InputError, match="token"):
        ours.encode(TEXTS, output_value="token_embeddings")
    with pytest.raises(InputError, match="precision"):
        ours.encode(TEXTS, precision="float16")
    with pytest.raises(InputError, match="single embedding"):
        ours.encode("one", precision="int8")
    with pytest.raises(InputError, match="batch_size"):
        ours.encode(TEXTS, batch_size=0)
    with pytest.raises(InputError, match="does not use"):
        ours.encode(TEXTS, flux_capacitor=True)
    with pytest.raises(InputError, match="prompt_name"):
        ours.encode(TEXTS, prompt_name="nope")
    with pytest.raises(InputError, match="not supported"):
        st_compat.SentenceTransformer(embedder=embedder, model_kwargs={"torch_dtype": "float16"})
