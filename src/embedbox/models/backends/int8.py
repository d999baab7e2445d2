"""int8 that keeps quality: NNCF post-training quantisation plus a gate that can refuse it.

The model is calibrated on half of the shipped calibration texts and measured on the other half
against fp32: it is used only when the mean cosine and the top-10 neighbour overlap reach the
bar below; otherwise embedbox falls back (with a one-line warning) to a faithful compute.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedbox.models.backends.errors import BackendUnavailable

MIN_MEAN_COS = 0.998
MIN_RECALL_AT_10 = 0.95
# The recipe, found by measurement on all-MiniLM-L6-v2 (docs/backends.md): NNCF's transformer
# preset (SmoothQuant on matmul inputs, alpha 0.95; attention-mask and normalisation paths kept
# in float) misses the bar by a hair (held-out mean cosine 0.9979). Keeping the first layer's
# FFN output projection in float, the most sensitive matmul, lifts it to 0.9984 (recall@10
# 0.967) at one float matmul of 37; the first and last both: 0.9984, slower; SmoothQuant alpha
# 0.5 or 0.75 and the mixed preset: no better. Patterns name that matmul in BERT-style models
# (BERT, MiniLM, MPNet), nomic_bert (both its remote-code and transformers layouts) and
# ModernBERT; unmatched ones are ignored.
_KEEP_FLOAT = (
    r".*layer\.0\.output\.dense.*",
    r".*layers\.0\.mlp\.(fc2|down_proj)/.*",
    r".*layers\.0\.mlp\.Wo/.*",
)
# Without VNNI (AVX2-only CPUs, or oneDNN capped to AVX2) int8 dot products go through
# vpmaddubsw, whose 16-bit pair sums saturate: the same recipe drops to mean cosine 0.9963,
# recall@10 0.935 (NNCF's 7-bit overflow fix: 0.9959). Measured there, the key projections are
# what suffers most: keeping them in float as well gives 0.9982 / 0.966 (queries 0.9964, values
# 0.9964, every FFN output 0.9968). Fused QKV projections (nomic_bert, ModernBERT) stay whole.
_KEEP_FLOAT_NO_VNNI = (
    *_KEEP_FLOAT,
    r".*attention\.self\.key/.*",
    r".*attention\.attn\.k/.*",
    r".*self_attn\.k_proj/.*",
    r".*attn\.Wqkv/.*",
)
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that keep VNNI int8 kernels.
_VNNI_ISAS = ("AVX2_VNNI", "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_FP16")


@dataclass(frozen=True)
class Recipe:
    """How to quantise on this CPU (both fields go into the cache key: a new recipe re-quantises)."""

    name: str
    keep_float: tuple[str, ...]


def recipe(flags: frozenset[str], isa_cap: str = "") -> Recipe:
    """The recipe for a CPU with these flags under this `ONEDNN_MAX_CPU_ISA` cap."""
    cap = isa_cap.strip().upper()
    capped = bool(cap) and not cap.startswith(("ALL", "DEFAULT", "AVX512_CORE_AMX", "AVX10_"))
    vnni = bool(VNNI_FLAGS & flags) and (not capped or cap.startswith(_VNNI_ISAS))
    if vnni:
        return Recipe("transformer-sq0.95-keep-first-ffn-out", _KEEP_FLOAT)
    return Recipe("transformer-sq0.95-keep-first-ffn-out-and-keys", _KEEP_FLOAT_NO_VNNI)


def split(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Calibration half (even lines) and held-out half (odd lines) of the shipped texts."""
    return list(texts[0::2]), list(texts[1::2])


@dataclass(frozen=True)
class GateReport:
    """How an int8 model compares with fp32 on held-out texts."""

    mean_cos: float
    min_cos: float
    recall_at_10: float
    texts: int

    @property
    def passed(self) -> bool:
        return self.mean_cos >= MIN_MEAN_COS and self.recall_at_10 >= MIN_RECALL_AT_10

    def line(self) -> str:
        return (
            f"mean cosine {self.mean_cos:.5f} (bar {MIN_MEAN_COS}), recall@10 "
            f"{self.recall_at_10:.3f} (bar {MIN_RECALL_AT_10}) on {self.texts} held-out texts"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        return cls(
            float(data["mean_cos"]),
            float(data["min_cos"]),
            float(data["recall_at_10"]),
            int(data["texts"]),
        )


def recall_at_k(reference: np.ndarray, candidate: np.ndarray, k: int = 10) -> float:
    """Mean overlap of each text's top-k neighbours (itself excluded) under both vector sets."""
    k = min(k, len(reference) - 1)
    if k < 1:
        return 1.0

    def top(v: np.ndarray) -> np.ndarray:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]

    ref, got = top(reference), top(candidate)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ref, got, strict=True)]))


def gate(reference: np.ndarray, candidate: np.ndarray) -> GateReport:
    """Compare int8 vectors with fp32 ones of the same texts."""
    a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    b = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
    cos = (a.astype(np.float64) * b).sum(1)
    return GateReport(
        float(cos.mean()), float(cos.min()), recall_at_k(reference, candidate), len(reference)
    )


def quantize(
    model: Any, feeds: list[dict[str, np.ndarray]], how: Recipe, verbose: bool = False
) -> Any:
    """An int8 copy of an `openvino.Model`, calibrated on `feeds` (padded input batches)."""
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(
            "compute 'int8' needs nncf; run `pip install 'embedbox[openvino]'`"
        ) from exc
    if not verbose:
        nncf.set_log_level(logging.ERROR)
    return nncf.quantize(
        model,
        nncf.Dataset(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(feeds),  # items are whole padded batches
        ignored_scope=nncf.IgnoredScope(patterns=list(how.keep_float), validate=False),
    )


def nncf_version() -> str:
    try:
        import nncf
    except ImportError:
        return "missing"
    return str(nncf.__version__)
