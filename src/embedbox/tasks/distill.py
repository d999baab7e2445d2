"""Distil a sentence model into a static embedding table (the model2vec method).

Each vocabulary token is passed through the transformer on its own, between the tokenizer's
special tokens; the mean of its output states becomes that token's vector. PCA keeps `dims`
directions and a Zipf-estimated SIF weight (common tokens count less) scales each row. The
result loads like any model (`Embedder(folder)`), in model2vec's file format
(`embedbox.models.static`): no transformer at inference, at a cost in quality.

>>> distill(Embedder(compute="fp32"), "minilm-static", dims=256)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedbox.errors import InputError
from embedbox.models.static import MAX_TOKENS, MODEL_TYPE
from embedbox.types import Progress

if TYPE_CHECKING:
    from embedbox.embed import Embedder

__all__ = ["DistillReport", "distill"]

SIF_COEFFICIENT = 1e-4


@dataclass(frozen=True)
class DistillReport:
    path: Path
    vocabulary: int
    dims: int
    seconds: float


def distill(
    embedder: Embedder,
    out: str | os.PathLike[str],
    *,
    dims: int | None = 256,
    batch: int = 512,
    progress: Progress | None = None,
) -> DistillReport:
    """Distil `embedder`'s model into a static model in the folder `out` (written atomically).

    `dims`: PCA dimensions (None keeps the model's width). Compute in fp32 for a faithful table.
    """
    start = time.perf_counter()
    dest = Path(out).expanduser()
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest} exists and is not empty; choose a new folder")
    if dims is not None and not 2 <= dims <= embedder.dim:
        raise InputError(f"dims must be between 2 and {embedder.dim}, got {dims}")
    tokenizer = embedder.encoder.tokenizer
    vocab_size = len(tokenizer.get_vocab())
    head, tail = embedder.encoder.special_prefix, embedder.encoder.special_suffix
    # model2vec found the specials swapped ([SEP] token [CLS]) to work better for BERT models.
    before, after = (tail[-1:], head[:1]) if head and tail else (head, tail)
    rows = np.empty((vocab_size, embedder.dim), np.float32)
    for at in range(0, vocab_size, batch):
        ids = [[*before, t, *after] for t in range(at, min(at + batch, vocab_size))]
        rows[at : at + len(ids)] = embedder.token_states(ids).mean(axis=1)
        if progress is not None:
            progress(at + len(ids), vocab_size)
    table = _post_process(rows, dims)
    _save(dest, table, tokenizer, embedder)
    return DistillReport(dest, vocab_size, int(table.shape[1]), time.perf_counter() - start)


def _post_process(rows: np.ndarray, dims: int | None) -> np.ndarray:
    """PCA to `dims`, then SIF weights from Zipf's law (token rank ~ frequency rank)."""
    x = rows.astype(np.float64)
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    keep = vt.shape[0] if dims is None else dims
    x = x @ vt[:keep].T
    rank = np.arange(1, len(x) + 1, dtype=np.float64)
    prob = (1.0 / rank) / np.sum(1.0 / rank)
    x *= (SIF_COEFFICIENT / (SIF_COEFFICIENT + prob))[:, None]
    return x.astype(np.float32)


def _save(dest: Path, table: np.ndarray, tokenizer: Any, embedder: Embedder) -> None:
    from safetensors.numpy import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        save_file({"embeddings": np.ascontiguousarray(table)}, str(tmp / "model.safetensors"))
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        config = {
            "model_type": MODEL_TYPE,
            "architectures": ["StaticModel"],
            "tokenizer_name": embedder.name,
            "apply_pca": int(table.shape[1]),
            "apply_zipf": True,
            "sif_coefficient": SIF_COEFFICIENT,
            "hidden_dim": int(table.shape[1]),
            "normalize": True,
            "max_length": MAX_TOKENS,
            "embedbox": {"distilled_from": embedder.name},
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
