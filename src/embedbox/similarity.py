"""Pure-numpy similarity: cosine / dot matrices and exact top-k, chunked to bound memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from embedbox.errors import InputError

Metric = Literal["cosine", "dot"]


def as_matrix(x: np.ndarray, name: str = "vectors") -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 1-D or 2-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contain NaN or infinite values")
    return arr


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def shorten(vectors: np.ndarray, dimensions: int | None, renormalize: bool) -> np.ndarray:
    """The first `dimensions` columns (Matryoshka; None: all), re-normalised when the model
    normalises its vectors."""
    out = vectors if dimensions is None else vectors[:, :dimensions]
    return normalize(out) if renormalize else np.ascontiguousarray(out, dtype=np.float32)


def similarity_matrix(a: np.ndarray, b: np.ndarray, metric: Metric = "cosine") -> np.ndarray:
    """(m, d) x (n, d) -> (m, n) similarities."""
    a, b = as_matrix(a, "a"), as_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"dimension mismatch: {a.shape[1]} vs {b.shape[1]}")
    if metric == "dot":
        return a @ b.T
    if metric != "cosine":
        raise InputError(f"unknown metric {metric!r}; use 'cosine' or 'dot'")
    # float32 rounding can put a unit vector's cosine with itself at 1.0000001
    return np.clip(normalize(a) @ normalize(b).T, -1.0, 1.0)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k largest entries of each row, best first."""
    k = min(k, scores.shape[1])
    if k <= 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.int64), empty.astype(np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)


def chunked_top_k(
    queries: np.ndarray, corpus: np.ndarray, k: int, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of queries against a (normalised) corpus by dot product, chunk by chunk."""
    q = as_matrix(queries, "queries")
    best_idx = np.empty((len(q), 0), dtype=np.int64)
    best_scores = np.empty((len(q), 0), dtype=np.float32)
    for start, block in iter_chunks(corpus, chunk):
        idx, scores = top_k(q @ block.T, k)
        best_idx = np.concatenate([best_idx, idx + start], axis=1)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        keep, best_scores = top_k(best_scores, k)
        best_idx = np.take_along_axis(best_idx, keep, axis=1)
    return best_idx, best_scores


def iter_chunks(x: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(x), size):
        yield start, x[start : start + size]
