"""How good a model's vectors are on held-out training data, by objective.

- scored pairs: Spearman correlation of the pairs' cosine similarity with the gold scores;
- pairs: retrieval of each held-out anchor's positives among all held-out positives and
  negatives: MRR@10, recall@10, accuracy@1;
- labels: logistic regression fitted on the training texts' vectors, scored on the held-out
  texts: accuracy and macro-F1 (`embedbox classify` metrics).

Each takes an `encode` function (texts -> vectors), so the same numbers come from an embedbox
`Embedder` before and after training and from the model being trained in between.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from embedbox.similarity import chunked_top_k, normalize
from embedbox.tasks.train_data import Examples, Objective

Encode = Callable[[list[str]], np.ndarray]
HEADLINE: dict[Objective, str] = {"scored": "spearman", "pairs": "mrr_at_10", "labels": "accuracy"}
MAX_LABEL_FIT = 5000  # training texts embedded to fit the evaluation's logistic regression
K = 10


def evaluate(encode: Encode, held: Examples, train: Examples | None = None) -> dict[str, float]:
    """Metrics of `encode`'s vectors on `held` (labels also need the `train` examples)."""
    if held.objective == "scored":
        return _scored(encode, held)
    if held.objective == "pairs":
        return _retrieval(encode, held)
    if train is None:
        raise ValueError("label metrics need the training examples to fit a classifier")
    return _labels(encode, held, train)


def _embed_unique(encode: Encode, texts: list[str]) -> tuple[dict[str, int], np.ndarray]:
    unique = list(dict.fromkeys(texts))
    return {t: i for i, t in enumerate(unique)}, normalize(np.asarray(encode(unique), np.float32))


def _scored(encode: Encode, held: Examples) -> dict[str, float]:
    a, b = held.column("sentence1"), held.column("sentence2")
    index, vecs = _embed_unique(encode, a + b)
    va = vecs[[index[t] for t in a]]
    vb = vecs[[index[t] for t in b]]
    cos = (va * vb).sum(1).astype(np.float64)
    gold = np.asarray(held.column("score"), np.float64)
    return {"spearman": spearman(cos, gold), "pearson": _pearson(cos, gold)}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties get their average rank, as scipy does)."""
    return _pearson(_ranks(np.asarray(x, np.float64)), _ranks(np.asarray(y, np.float64)))


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if len(values) < len(x):  # average the ranks of tied values
        sums = np.zeros(len(values))
        np.add.at(sums, inverse, ranks)
        ranks = (sums / counts)[inverse]
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def _retrieval(encode: Encode, held: Examples) -> dict[str, float]:
    anchors, positives = held.column("anchor"), held.column("positive")
    negatives = held.column("negative") if held.has_negatives else []
    relevant: dict[str, set[str]] = {}
    for a, p in zip(anchors, positives, strict=True):
        relevant.setdefault(a, set()).add(p)
    queries = list(relevant)
    corpus = list(dict.fromkeys(positives + negatives))
    _, q_vecs = _embed_unique(encode, queries)
    c_index, c_vecs = _embed_unique(encode, corpus)
    top, _ = chunked_top_k(q_vecs, c_vecs, min(K, len(corpus)))
    rr, recall, first = [], [], []
    for query, row in zip(queries, top, strict=True):
        wanted = {c_index[p] for p in relevant[query]}
        hits = [int(j) in wanted for j in row]
        rank = next((i for i, h in enumerate(hits) if h), None)
        rr.append(0.0 if rank is None else 1.0 / (rank + 1))
        recall.append(sum(hits) / len(wanted))
        first.append(1.0 if hits and hits[0] else 0.0)
    return {
        "mrr_at_10": float(np.mean(rr)),
        "recall_at_10": float(np.mean(recall)),
        "accuracy_at_1": float(np.mean(first)),
    }


def _labels(encode: Encode, held: Examples, train: Examples) -> dict[str, float]:
    from embedbox.tasks.classify import evaluate as report
    from embedbox.tasks.classify import fit_head

    rows = list(range(len(train)))
    if len(rows) > MAX_LABEL_FIT:
        rows = sorted(random.Random(0).sample(rows, MAX_LABEL_FIT))
    fit = train.take(rows)
    head = fit_head(np.asarray(encode(fit.column("text"))), fit.column("label"), "logreg")
    predicted = [p.label for p in head.predict(np.asarray(encode(held.column("text"))))]
    result = report(held.column("label"), predicted)
    return {"accuracy": result.accuracy, "macro_f1": result.macro_f1}


def describe(objective: Objective) -> str:
    """What the headline metric is, for reports."""
    return {
        "scored": "Spearman correlation of cosine similarity with the gold scores",
        "pairs": "MRR@10 of each anchor's positives among the held-out candidates",
        "labels": "accuracy of logistic regression on the vectors",
    }[objective]


def rounded(metrics: dict[str, float], digits: int = 4) -> dict[str, Any]:
    return {k: round(v, digits) for k, v in metrics.items()}
