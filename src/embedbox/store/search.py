"""Search primitives: vector top-k (exact or HNSW + exact re-score), FTS5 queries, RRF fusion."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from embedbox.errors import InputError
from embedbox.store.ann import AnnIndex, AnnOptions
from embedbox.store.vectors import VectorTable, top_docs

RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


def vector_top(
    table: VectorTable,
    ann: AnnIndex | None,
    query: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    options: AnnOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` documents by their best chunk -> (matrix row positions, exact scores).

    `allowed`: sorted row positions permitted by a filter (None: all rows). Small collections and
    selective filters are searched exactly; otherwise HNSW candidates are re-scored exactly and,
    if too few documents survive the filter, the search falls back to exact.
    """
    n = len(table)
    n_allowed = n if allowed is None else len(allowed)
    if n_allowed == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    exact = ann is None or n_allowed <= options.threshold or n_allowed < n * 0.05
    if not exact and ann is not None:
        ann.sync(table)
        frac = n_allowed / n
        want = int(np.ceil(k * options.oversample / frac)) + k
        keys = ann.search(query, min(n, want))
        rows = table.positions(keys)
        inside = rows < n
        rows, keys = rows[inside], keys[inside]
        rows = rows[table.rids[rows] == keys]
        if allowed is not None:
            rows = rows[np.isin(rows, allowed, assume_unique=False)]
        scores = table.matrix[rows] @ query
        pos, best = top_docs(scores, table.docs[rows], k)
        if len(pos) >= min(k, n_allowed):
            return rows[pos], best
    if allowed is None:
        scores = table.matrix @ query
        return top_docs(scores, table.docs, k)
    scores = table.matrix[allowed] @ query
    pos, best = top_docs(scores, table.docs[allowed], k)
    return allowed[pos], best


def fts_query(text: str) -> str:
    """A safe FTS5 MATCH expression: every word of `text` quoted, any may match (BM25 ranks)."""
    words = _WORD.findall(text)
    if not words:
        raise InputError(f"keyword search needs at least one word, got {text!r}")
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float]) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion: score(d) = sum_i w_i / (60 + rank_i(d)), rank from 1."""
    if len(rankings) != len(weights):
        raise InputError("one weight per ranking is needed")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + weight / (RRF_K + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])
