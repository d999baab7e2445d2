"""Speed options of the text engine: the hardware-picked batch token budget and `compile=True`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embedbox import Embedder, InputError, hardware
from tests.tiny_models import build

TEXTS = [
    "a cat",
    "A man is playing a guitar on the street corner.",
    "word",
    "The quick brown fox jumps over the lazy dog, again and again, " * 6,
    "Two dogs run through a field of tall grass.",
    "short one",
    "Stocks fell on Monday as investors weighed the outlook for interest rates and earnings.",
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with the MiniLM tokenizer: compiles in seconds, same model class."""
    return build("bert", tmp_path_factory.mktemp("models") / "tiny-bert")


def test_batch_tokens_picked_by_hardware(tiny_bert: Path) -> None:
    assert hardware.auto_batch_tokens("cpu", torch.bfloat16) == 2048
    assert hardware.auto_batch_tokens("cpu", torch.float32) == 8192
    assert hardware.auto_batch_tokens("cuda", torch.float16) == 8192
    assert hardware.auto_batch_tokens("cuda:0", torch.bfloat16) == 8192
    assert Embedder(str(tiny_bert), compute="bf16", device="cpu").batch_tokens == 2048
    fp32 = Embedder(str(tiny_bert), compute="fp32", device="cpu")
    assert fp32.batch_tokens == 8192 and fp32.describe()["batch_tokens"] == 8192
    assert Embedder(str(tiny_bert), compute="bf16", batch_tokens=4096).batch_tokens == 4096
    with pytest.raises(InputError, match="batch_tokens"):
        Embedder(str(tiny_bert), batch_tokens=0)


def test_batch_budget_does_not_change_vectors(tiny_bert: Path) -> None:
    small = Embedder(str(tiny_bert), compute="fp32", batch_tokens=64).embed(TEXTS)
    large = Embedder(str(tiny_bert), compute="fp32", batch_tokens=8192).embed(TEXTS)
    np.testing.assert_allclose(small, large, atol=1e-5)


@pytest.mark.slow
def test_compiled_matches_eager_across_shapes(tiny_bert: Path) -> None:
    """One dynamic-shape graph for every batch size and length, a batch of one included, with
    the eager path's vectors."""
    import torch._dynamo

    torch._dynamo.reset()
    eager = Embedder(str(tiny_bert), compute="fp32", batch_tokens=64)
    compiled = Embedder(str(tiny_bert), compute="fp32", batch_tokens=64, compile=True)
    assert compiled.describe()["compiled"] is True and eager.describe()["compiled"] is False
    want = eager.embed(TEXTS)
    got = compiled.embed(TEXTS)  # several batches: different sizes and lengths
    assert compiled.encoder.compiled, "the backend fell back to eager"
    np.testing.assert_allclose(got, want, atol=1e-5)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    one = compiled.embed_one("a single text of a new length, in a batch of its own")
    np.testing.assert_allclose(
        one, eager.embed_one("a single text of a new length, in a batch of its own"), atol=1e-5
    )
    texts = [*TEXTS[:3], "one more text"]
    np.testing.assert_allclose(compiled.embed(texts), eager.embed(texts), atol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs, "recompiled"


def test_compile_failure_falls_back_to_eager(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._dynamo.exc import BackendCompilerFailed

    def broken(model: Any, **_: Any) -> Any:
        def forward(**__: Any) -> Any:
            raise BackendCompilerFailed(broken, RuntimeError("no C++ compiler"), None)

        return forward

    monkeypatch.setattr(torch, "compile", broken)
    emb = Embedder(str(tiny_bert), compute="fp32", compile=True)
    with pytest.warns(RuntimeWarning, match="running it uncompiled"):
        got = emb.embed(TEXTS)
    assert emb.describe()["compiled"] is False
    want = Embedder(str(tiny_bert), compute="fp32").embed(TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emb.embed(TEXTS[:2])  # no second warning: it stays eager


def test_compile_refuses_task_adapters(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    path = build("jina", tmp_path / "jina")
    with pytest.raises(InputError, match="task adapters"):
        Embedder(str(path), compute="fp32", compile=True)
