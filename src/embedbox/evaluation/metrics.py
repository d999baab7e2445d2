"""Evaluation metrics in plain numpy, defined as the standard tools define them.

Correlations: Pearson, and Spearman as Pearson on average ranks (scipy's `spearmanr`).
Ranking: trec_eval's definitions (what `pytrec_eval`, and so MTEB and BEIR, report): linear gain
nDCG@k (`ndcg_cut_k`), MAP@k divided by all relevant documents (`map_cut_k`), recall@k
(`recall_k`), MRR@k (`recip_rank` on the run cut at k). A document is relevant when its qrels
grade is >= 1. A run (scores) is ordered as trec_eval orders it: score descending, ties by
document id descending. Clustering: V-measure and adjusted Rand index (scikit-learn's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]
Rankings = Mapping[str, Sequence[str]]
DEFAULT_KS = (1, 10, 100)


# ---- correlations --------------------------------------------------------------------------
def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank."""
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], len(a)]
    ranks = np.empty(len(a), dtype=np.float64)
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(
            f"pearson needs two 1-D arrays of one length >= 2, got {a.shape}, {b.shape}"
        )
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    return pearson(rankdata(x), rankdata(y))


# ---- ranking -------------------------------------------------------------------------------
def trec_order(scores: Mapping[str, float]) -> list[str]:
    """Document ids as trec_eval ranks them: score descending, then id descending."""
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)


def _relevant(judged: Mapping[str, int]) -> dict[str, int]:
    return {d: int(g) for d, g in judged.items() if g >= 1}


def ndcg_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    rel = _relevant(judged)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = np.array([rel.get(d, 0) for d in ranking[:k]], dtype=np.float64)
    ideal = np.sort(np.array(list(rel.values()), dtype=np.float64))[::-1][:k]
    idcg = float((ideal * discounts[: len(ideal)]).sum())
    return float((gains * discounts[: len(gains)]).sum()) / idcg if idcg > 0 else 0.0


def average_precision_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    rel = _relevant(judged)
    if not rel:
        return 0.0
    hits, total = 0, 0.0
    for rank, doc in enumerate(ranking[:k], 1):
        if doc in rel:
            hits += 1
            total += hits / rank
    return total / len(rel)


def reciprocal_rank_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    rel = _relevant(judged)
    for rank, doc in enumerate(ranking[:k], 1):
        if doc in rel:
            return 1.0 / rank
    return 0.0


def recall_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    rel = _relevant(judged)
    return sum(1 for d in ranking[:k] if d in rel) / len(rel) if rel else 0.0


def ranking_metrics(
    qrels: Qrels, rankings: Rankings, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Mean over the queries of `qrels` that have a relevant document (a query without a
    ranking scores 0): ndcg@k, map@k, mrr@k and recall@k for each k."""
    queries = [q for q, judged in qrels.items() if _relevant(judged)]
    if not queries:
        raise ValueError("no query has a relevant document (grade >= 1)")
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in (
            ("ndcg", ndcg_at),
            ("map", average_precision_at),
            ("mrr", reciprocal_rank_at),
            ("recall", recall_at),
        ):
            values = [fn(list(rankings.get(q, ())), qrels[q], k) for q in queries]
            out[f"{name}@{k}"] = float(np.mean(values))
    return out


def run_metrics(qrels: Qrels, run: Run, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """`ranking_metrics` of a scored run, ordered as trec_eval orders it."""
    return ranking_metrics(qrels, {q: trec_order(scores) for q, scores in run.items()}, ks)


# ---- clustering ----------------------------------------------------------------------------
Labels = Sequence[object] | np.ndarray


def _contingency(a: Labels, b: Labels) -> np.ndarray:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} true labels but {len(b)} predicted")
    _, ia = np.unique(np.asarray([str(x) for x in a]), return_inverse=True)
    _, ib = np.unique(np.asarray([str(x) for x in b]), return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def v_measure(labels_true: Labels, labels_pred: Labels) -> float:
    """Harmonic mean of homogeneity and completeness (beta = 1)."""
    table = _contingency(labels_true, labels_pred)
    n = table.sum()
    h_c, h_k = _entropy(table.sum(1)), _entropy(table.sum(0))
    nz = table > 0
    joint = table[nz] / n
    outer = np.outer(table.sum(1), table.sum(0))[nz] / (n * n)
    mutual = float((joint * (np.log(joint) - np.log(outer))).sum())
    homogeneity = 1.0 if h_c == 0 else mutual / h_c
    completeness = 1.0 if h_k == 0 else mutual / h_k
    total = homogeneity + completeness
    return 0.0 if total == 0 else 2 * homogeneity * completeness / total


def adjusted_rand(labels_true: Labels, labels_pred: Labels) -> float:
    table = _contingency(labels_true, labels_pred).astype(np.float64)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    n = table.sum()
    expected = rows * cols / (n * (n - 1) / 2) if n > 1 else 0.0
    maximum = (rows + cols) / 2
    return 1.0 if maximum == expected else (index - expected) / (maximum - expected)
