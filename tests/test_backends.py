"""Backends under the text encoder: OpenVINO parity, the conversion cache, `auto`'s measured
choice, the int8 quality gate, per-architecture fallback, and the ONNX paraphrase-MiniLM-L3-v2.

Timing is never asserted: what `auto` measures is only checked for being cached, reused and
re-measured when its key changes.
"""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from embedbox import Embedder, InputError, hardware
from embedbox.datasets import lee_background, sts_b
from embedbox.models.backends import autotune, cache, int8, openvino, select
from embedbox.models.backends.build import fp32_ir
from embedbox.models.backends.errors import BackendUnavailable
from embedbox.tasks.tokens import embed_tokens
from tests.tiny_models import build
from tests.tolerance import FP32_ATOL, row_cosines

# Conversions and measurements take seconds each: the full tier runs them, not `make test-fast`.
pytestmark = pytest.mark.slow

LONG = "the quick brown fox jumps over the lazy dog " * 80  # ~720 tokens
TINY_TEXTS = ["a cat", "a kitten sat on the mat by the door", "hello", LONG]


def real_texts() -> list[str]:
    """Short STS-B sentences and long Lee articles (most of them over 256 tokens)."""
    return [p.a for p in sts_b("test")[:200]] + [t for t in lee_background() if len(t) > 1500][:30]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return real_texts()


@pytest.fixture(scope="module")
def reference(embedder: Embedder, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(embedder.info.path), device="cpu")
    return np.asarray(st.encode(texts, batch_size=32, convert_to_numpy=True))


@pytest.fixture(scope="module")
def ov_fp32() -> Embedder:
    return Embedder("all-MiniLM-L6-v2", backend="openvino", compute="fp32")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny-backends")
    kinds = ("bert", "mpnet", "nomic_bert", "modernbert", "jina")
    return {kind: build(kind, base / kind) for kind in kinds}


def ov_entries() -> list[Path]:
    root = cache.cache_dir() / "openvino"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


# ---- parity with sentence-transformers -------------------------------------------------------
@pytest.mark.numerics
def test_openvino_fp32_matches_sentence_transformers(
    ov_fp32: Embedder, embedder: Embedder, texts: list[str], reference: np.ndarray
) -> None:
    d = ov_fp32.describe()
    assert (d["backend"], d["compute"], d["fallback"]) == ("openvino", "fp32", "")
    assert sum(c > 256 for c in ov_fp32.count_tokens(texts)) >= 20
    ours = ov_fp32.embed(texts, truncate=False)
    assert row_cosines(ours, reference).min() >= 0.99999
    # Chunked long texts go through the same shared path: equal to torch fp32's.
    chunked = ov_fp32.encode(texts[-30:], long_text="chunk")
    assert len(chunked.chunked) >= 20
    want = embedder.embed(texts[-30:], long_text="chunk")
    assert row_cosines(chunked.vectors, want).min() >= 0.99999


@pytest.mark.numerics
def test_openvino_bf16_matches_sentence_transformers(
    texts: list[str], reference: np.ndarray
) -> None:
    emb = Embedder("all-MiniLM-L6-v2", backend="openvino", compute="bf16")
    if hardware.cpu_has_fast_bf16():
        assert (emb.backend, emb.compute) == ("openvino", "bf16")
    else:  # no native bf16 here: it says what runs instead
        assert emb.compute == "fp32" or emb.describe()["fallback"]
    assert row_cosines(emb.embed(texts, truncate=False), reference).min() >= 0.999


@pytest.mark.numerics
def test_int8_keeps_its_bar_or_falls_back(embedder: Embedder) -> None:
    sentences = [t for p in sts_b("test")[:300] for t in (p.a, p.b)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = Embedder("all-MiniLM-L6-v2", backend="openvino", compute="int8")
    gate = emb.describe()["int8_gate"]
    if gate is None:  # this CPU's plugin cannot compile int8 (e.g. under an ISA cap): said so
        assert "cannot compile" in emb.describe()["fallback"] and emb.compute != "int8"
        return
    assert gate["texts"] >= 150
    if emb.compute == "int8":
        assert gate["passed"] and gate["mean_cos"] >= int8.MIN_MEAN_COS
        # On texts the gate never saw (STS-B), against fp32.
        want, got = embedder.embed(sentences), emb.embed(sentences)
        assert row_cosines(got, want).mean() >= int8.MIN_MEAN_COS
        assert int8.recall_at_k(want, got) >= int8.MIN_RECALL_AT_10
    else:  # refused on this CPU: said once, and a faithful compute runs instead
        assert not gate["passed"] and "int8 refused" in emb.describe()["fallback"]
        assert any("int8 refused" in str(w.message) for w in caught)
        assert emb.compute in ("fp32", "bf16")


def test_int8_gate_refuses_a_broken_calibration(
    ov_fp32: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One repeated 3-token text: activation ranges that clip every real text.
    broken = ["."] * 64
    backend, report = select.int8_backend(ov_fp32.encoder, select.Request(), calibration=broken)
    assert backend is None and not report.passed
    assert report.mean_cos < int8.MIN_MEAN_COS or report.recall_at_10 < int8.MIN_RECALL_AT_10
    # Through the Embedder: a one-line warning, a faithful compute, the verdict in describe().
    # The refusal is cached with the calibration's key, so this does not quantise again.
    monkeypatch.setattr(int8, "split", lambda texts: (broken[::2], list(texts[1::2])))
    monkeypatch.setattr(int8, "quantize", _must_not_run)
    with pytest.warns(RuntimeWarning, match="int8 refused: it misses the quality bar"):
        emb = Embedder("all-MiniLM-L6-v2", backend="openvino", compute="int8")
    assert emb.compute in ("fp32", "bf16") and not emb.describe()["int8_gate"]["passed"]


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("this should have come from the cache")


@pytest.mark.parametrize(
    ("flags", "cap", "keys_in_float"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "", False),
        ({"avx2", "avx_vnni"}, "", False),
        ({"avx2", "amx_int8", "avx512_vnni"}, "AVX512_CORE_BF16", False),
        ({"avx2"}, "", True),  # no VNNI: saturating int8 dot products
        ({"avx2", "avx512f", "avx512_vnni"}, "AVX2", True),  # VNNI capped away
        ({"avx2", "avx512f", "avx512_vnni"}, "avx512_core", True),
    ],
)
def test_int8_recipe_follows_the_cpus_int8_kernels(
    flags: set[str], cap: str, keys_in_float: bool
) -> None:
    how = int8.recipe(frozenset(flags), cap)
    assert (len(how.keep_float) > len(int8.recipe(frozenset({"avx512_vnni"})).keep_float)) is (
        keys_in_float
    )
    assert ("keys" in how.name) is keys_in_float


@pytest.mark.parametrize(
    ("kind", "kept"),
    [
        (
            "bert",
            {"layer.0.output.dense", "layer.0.attention.self.key", "layer.1.attention.self.key"},
        ),
        ("mpnet", {"layer.0.output.dense", "layer.0.attention.attn.k", "layer.1.attention.attn.k"}),
        (
            "nomic_bert",
            {"layers.0.mlp.down_proj", "layers.0.self_attn.k_proj", "layers.1.self_attn.k_proj"},
        ),
        ("modernbert", {"layers.0.mlp.Wo", "layers.0.attn.Wqkv", "layers.1.attn.Wqkv"}),
    ],
)
def test_int8_recipe_names_the_sensitive_matmuls(
    tiny: dict[str, Path], kind: str, kept: set[str]
) -> None:
    """The float-kept patterns match the first FFN output and (without VNNI) every key
    projection of each architecture, and nothing else."""
    emb = Embedder(str(tiny[kind]), backend="openvino", compute="fp32")
    model = openvino.read_ir(fp32_ir(emb.encoder))
    names = [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul"]
    patterns = int8.recipe(frozenset({"avx2"})).keep_float
    matched = {n for n in names if any(re.fullmatch(p, n) for p in patterns)}
    assert {re.search(r"layers?\.\d+\.[^/]+", n).group() for n in matched} == kept  # type: ignore[union-attr]


def test_int8_needs_openvino_not_torch() -> None:
    with pytest.raises(InputError, match="compute 'int8' runs on backend 'openvino'"):
        Embedder("all-MiniLM-L6-v2", backend="torch", compute="int8")


# ---- the conversion cache ---------------------------------------------------------------------
def test_conversion_is_cached_keyed_by_content_and_rebuilt_when_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    folder = build("bert", tmp_path / "bert")
    first = Embedder(str(folder), backend="openvino", compute="fp32")
    want = Embedder(str(folder), backend="torch", compute="fp32").embed(TINY_TEXTS)
    np.testing.assert_allclose(first.embed(TINY_TEXTS), want, atol=FP32_ATOL)
    [entry] = ov_entries()
    manifest = cache.read_entry(entry)
    assert manifest is not None and manifest["min_cos_vs_torch"] >= 0.99999

    # Reused: no second conversion.
    real_convert = openvino.convert_torch
    monkeypatch.setattr(openvino, "convert_torch", _must_not_run)
    again = Embedder(str(folder), backend="openvino", compute="fp32")
    np.testing.assert_allclose(again.embed(TINY_TEXTS), want, atol=FP32_ATOL)
    monkeypatch.setattr(openvino, "convert_torch", real_convert)

    # A corrupt entry is rebuilt, never trusted.
    (entry / "model.bin").write_bytes(b"\0" * 100)
    assert cache.read_entry(entry) is None
    rebuilt = Embedder(str(folder), backend="openvino", compute="fp32")
    np.testing.assert_allclose(rebuilt.embed(TINY_TEXTS), want, atol=FP32_ATOL)
    assert ov_entries() == [entry] and cache.read_entry(entry) is not None

    # A changed model file converts again, under a new key.
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name] = weights[name] * 1.5
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    changed = Embedder(str(folder), backend="openvino", compute="fp32")
    want = Embedder(str(folder), backend="torch", compute="fp32").embed(TINY_TEXTS)
    np.testing.assert_allclose(changed.embed(TINY_TEXTS), want, atol=FP32_ATOL)
    assert len(ov_entries()) == 2


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    assert cache.cache_dir() == tmp_path
    monkeypatch.delenv(cache.CACHE_ENV)
    assert cache.cache_dir().name == "embedbox"


# ---- auto: measured once, cached, re-measured when the key changes ------------------------------
def test_auto_measures_once_then_reuses_and_remeasures_on_a_new_key(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(select.BACKEND_ENV, raising=False)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    calls: list[list[tuple[str, str]]] = []
    real_measure = autotune.measure

    def counting(enc, req, candidates):  # type: ignore[no-untyped-def]
        calls.append(list(candidates))
        return real_measure(enc, req, candidates)

    monkeypatch.setattr(autotune, "measure", counting)
    folder = str(tiny["bert"])
    first = Embedder(folder, compute="fp32")
    d = first.describe()
    assert len(calls) == 1 and d["backend_choice"] == "measured"
    assert set(calls[0]) == {("torch", "fp32"), ("openvino", "fp32")}
    assert d["measured"]["winner"] == f"{d['backend']}/{d['compute']}"
    assert all(v >= autotune.MIN_COS for v in d["measured"]["min_cos"].values())

    second = Embedder(folder, compute="fp32")
    assert len(calls) == 1 and second.describe()["backend_choice"] == "measured earlier"
    assert (second.backend, second.compute) == (first.backend, first.compute)
    np.testing.assert_allclose(second.embed(TINY_TEXTS), first.embed(TINY_TEXTS), atol=FP32_ATOL)

    monkeypatch.setattr(openvino, "version", lambda: "0.0.0-other")  # a new runtime version
    Embedder(folder, compute="fp32")
    assert len(calls) == 2
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # another machine (capped ISA)
    Embedder(folder, compute="fp32")
    assert len(calls) == 3
    Embedder(folder, compute="fp32")
    assert len(calls) == 3


def test_an_explicit_backend_skips_the_measurement(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(autotune, "measure", _must_not_run)
    folder = str(tiny["bert"])
    assert Embedder(folder, backend="torch").backend == "torch"
    monkeypatch.setenv(select.BACKEND_ENV, "openvino")
    emb = Embedder(folder, compute="fp32")
    assert emb.backend == "openvino" and emb.describe()["backend_choice"] == "asked"
    monkeypatch.setenv(select.BACKEND_ENV, "tensorrt")
    with pytest.raises(InputError, match="EMBEDBOX_BACKEND must be one of torch, openvino"):
        Embedder(folder)


def test_unknown_backend_or_compute_is_an_input_error(tiny: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="unknown backend 'tensorrt'"):
        Embedder(str(tiny["bert"]), backend="tensorrt")
    with pytest.raises(InputError, match="unknown compute 'int4'"):
        Embedder(str(tiny["bert"]), compute="int4")


# ---- architectures ----------------------------------------------------------------------------
@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["bert", "mpnet", "nomic_bert", "modernbert"])
def test_architecture_converts_and_matches_torch(tiny: dict[str, Path], kind: str) -> None:
    emb = Embedder(str(tiny[kind]), backend="openvino", compute="fp32")
    d = emb.describe()
    assert (d["backend"], d["fallback"], d["architecture"]) == ("openvino", "", kind)
    want = Embedder(str(tiny[kind]), backend="torch", compute="fp32")
    # A padded batch (different lengths) and a text far beyond 512 tokens.
    np.testing.assert_allclose(emb.embed(TINY_TEXTS), want.embed(TINY_TEXTS), atol=FP32_ATOL)


def test_task_adapters_fall_back_to_torch_with_the_reason(tiny: dict[str, Path]) -> None:
    with pytest.warns(RuntimeWarning, match="task adapters run on the torch backend only"):
        emb = Embedder(str(tiny["jina"]), backend="openvino", compute="fp32")
    d = emb.describe()
    assert d["backend"] == "torch" and "task adapters" in d["fallback"]
    assert emb.embed(["a cat"], task="text-matching").shape == (1, 32)


def test_a_conversion_that_disagrees_falls_back(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    real = openvino.convert_torch

    def wrong(model, example):  # type: ignore[no-untyped-def]
        import copy

        import torch

        other = copy.deepcopy(model)
        with torch.no_grad():
            other.embeddings.word_embeddings.weight.mul_(-1)  # a different function
        return real(other, example)

    monkeypatch.setattr(openvino, "convert_torch", wrong)
    with pytest.warns(RuntimeWarning, match="disagrees with torch"):
        emb = Embedder(str(tiny["bert"]), backend="openvino", compute="fp32")
    assert emb.backend == "torch" and "disagrees with torch" in emb.describe()["fallback"]
    assert ov_entries() == []  # nothing cached


def test_missing_openvino_names_the_extra(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openvino, "available", lambda: False)
    with pytest.raises(BackendUnavailable, match=r"pip install 'embedbox\[openvino\]'"):
        Embedder(str(tiny["bert"]), backend="openvino")
    monkeypatch.delenv(select.BACKEND_ENV, raising=False)
    emb = Embedder(str(tiny["bert"]), compute="fp32")  # auto: torch, saying why
    assert emb.backend == "torch" and "openvino is not installed" in emb.describe()["fallback"]


# ---- every caller: threads, tokens, CLI ----------------------------------------------------------
@pytest.mark.numerics
def test_concurrent_threads_get_the_vectors_of_a_single_caller(
    ov_fp32: Embedder, texts: list[str]
) -> None:
    parts = [texts[i::4] for i in range(4)]
    want = [ov_fp32.embed(p, truncate=False) for p in parts]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        got[i] = ov_fp32.embed(parts[i], truncate=False)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_allclose(got[i], want[i], atol=FP32_ATOL)


@pytest.mark.numerics
def test_token_vectors_through_openvino(ov_fp32: Embedder, embedder: Embedder) -> None:
    text = "I sat on the river bank"
    got, want = embed_tokens(text, ov_fp32), embed_tokens(text, embedder)
    assert got.tokens == want.tokens and got.offsets == want.offsets
    np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-4)


@pytest.mark.numerics
def test_cli_backend_option(ov_fp32: Embedder) -> None:
    import json

    from typer.testing import CliRunner

    from embedbox.cli import app

    out = CliRunner().invoke(
        app, ["embed", "a cat", "--backend", "openvino", "--compute", "fp32", "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout.splitlines()[-1])
    assert (data["backend"], data["compute"]) == ("openvino", "fp32")
    vector = np.asarray(data["embeddings"][0], np.float32)
    np.testing.assert_allclose(vector, ov_fp32.embed_one("a cat"), atol=FP32_ATOL)
    bad = CliRunner().invoke(app, ["embed", "a cat", "--backend", "tensorrt"])
    assert bad.exit_code != 0


def test_server_settings_choose_the_backend(tiny: dict[str, Path]) -> None:
    from embedbox.server.metrics import Metrics
    from embedbox.server.pool import ModelPool
    from embedbox.server.settings import ServerSettings

    folder = str(tiny["bert"])
    settings = ServerSettings(models=(folder,), backend="openvino", compute="fp32")
    pool = ModelPool(settings, Metrics())
    emb = pool._load(pool.names[0])
    assert (emb.backend, emb.compute) == ("openvino", "fp32")


# ---- paraphrase-MiniLM-L3-v2, an ONNX file in a PyPI package ------------------------------------
@pytest.mark.numerics
def test_paraphrase_minilm_l3_onnx_loads_offline_and_keeps_its_sts_b_score() -> None:
    from scipy.stats import spearmanr

    emb = Embedder("paraphrase-MiniLM-L3-v2", compute="fp32")
    d = emb.describe()
    assert (d["backend"], d["dim"], d["max_tokens"], d["normalize"]) == (
        "openvino",
        384,
        128,
        False,
    )
    assert emb.info.path.name == "paraphrase-MiniLM-L3-v2.onnx"
    pairs = sts_b("test")
    a, b = emb.embed([p.a for p in pairs]), emb.embed([p.b for p in pairs])
    rho = spearmanr(row_cosines(a, b), [p.score for p in pairs]).statistic
    assert abs(rho - 0.8241) < 0.003, rho  # published: 82.41

    # The shared mean pooling equals the file's own pooled output "461".
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(emb.info.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    sentences = [p.a for p in pairs[:40]]
    inputs = emb.encoder.inputs(emb.encoder.tokenize(sentences))
    names = {p.get_any_name() for p in compiled.inputs}
    out = compiled({k: v.numpy() for k, v in inputs.items() if k in names})[compiled.output("461")]
    np.testing.assert_allclose(emb.embed(sentences), out, atol=1e-5)


def test_paraphrase_minilm_l3_needs_a_backend_that_runs_onnx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(BackendUnavailable, match="is an ONNX model; it runs on backend 'openvino'"):
        Embedder("paraphrase-MiniLM-L3-v2", backend="torch")
    from embedbox.errors import ModelNotFound

    monkeypatch.setattr(openvino, "available", lambda: False)
    with pytest.raises(ModelNotFound, match=r"embedbox\[openvino\]"):
        Embedder("paraphrase-MiniLM-L3-v2")


def test_single_texts_go_to_the_latency_winner_only_when_clearly_faster() -> None:
    import torch

    record = {
        "winner": "openvino/bf16",
        "latency_winner": "openvino/fp32",
        "latency_ms": {"openvino/bf16": 10.0, "openvino/fp32": 5.0},
    }
    assert autotune._single_text(record) == "openvino/fp32"
    assert (
        autotune._single_text(
            {**record, "latency_ms": {"openvino/bf16": 5.5, "openvino/fp32": 5.0}}
        )
        is None
    )
    assert autotune._single_text({**record, "latency_winner": "openvino/bf16"}) is None

    class Fake:
        device = torch.device("cpu")

        def __init__(self, name: str, value: float) -> None:
            self.name, self.compute, self.value = name, "fp32", value

        def token_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.full((*inputs["input_ids"].shape, 2), self.value)

        def set_adapter(self, name: str) -> None:
            raise AssertionError

    routed = autotune.BySize(Fake("batch", 1.0), Fake("single", 2.0))
    one, two = torch.zeros((1, 3), dtype=torch.long), torch.zeros((2, 3), dtype=torch.long)
    assert float(routed.token_states({"input_ids": one})[0, 0, 0]) == 2.0
    assert float(routed.token_states({"input_ids": two})[0, 0, 0]) == 1.0
    assert (routed.name, routed.compute) == ("batch", "fp32")
