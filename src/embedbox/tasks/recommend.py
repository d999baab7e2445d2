"""Recommendations from embeddings: "if you liked X, you might enjoy Y".

A query vector is built Rocchio-style from liked items (optionally weighted, e.g. recent history
heavier) minus a share of disliked ones; candidates are ranked by cosine similarity to it, inputs
and seen items are excluded, and MMR can trade relevance for diversity.

`recommend_vectors` works on a plain array (items are row indices); `recommend` on a collection
(items are ids, metadata filters apply before ranking).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedbox.errors import InputError
from embedbox.similarity import as_matrix, normalize

if TYPE_CHECKING:
    from embedbox.store.collection import Collection

__all__ = [
    "RecommendOptions",
    "Recommendation",
    "Scored",
    "mmr",
    "profile_vector",
    "recency_weights",
    "recommend",
    "recommend_vectors",
]


@dataclass(frozen=True)
class RecommendOptions:
    """`diversity`: None = rank by relevance only; otherwise the MMR lambda in [0, 1]
    (1 = pure relevance, 0 = pure novelty; 0.5-0.7 is a good start).
    `half_life`: history weights halve every `half_life` items back from the newest."""

    k: int = 10
    negative_weight: float = 0.5
    diversity: float | None = None
    half_life: float | None = None
    pool: int = 100  # candidates considered by MMR

    def check(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"k must be a positive integer, got {self.k!r}")
        if self.negative_weight < 0:
            raise InputError("negative_weight must be >= 0")
        if self.diversity is not None and not 0.0 <= self.diversity <= 1.0:
            raise InputError(
                f"diversity (MMR lambda) must be between 0 and 1, got {self.diversity}"
            )
        if self.half_life is not None and self.half_life <= 0:
            raise InputError("half_life must be positive")


@dataclass(frozen=True)
class Scored:
    """A recommended row of an array and its cosine similarity to the profile."""

    index: int
    score: float


@dataclass(frozen=True)
class Recommendation:
    """A recommended collection item."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": round(self.score, 6),
            "text": self.text,
            "metadata": self.metadata,
        }


def recency_weights(n: int, half_life: float | None) -> np.ndarray:
    """Weights for a history ordered oldest -> newest: 1 for the newest, halving every
    `half_life` items back (all 1 when `half_life` is None)."""
    if half_life is None:
        return np.ones(n, dtype=np.float64)
    age = np.arange(n - 1, -1, -1, dtype=np.float64)
    return np.power(0.5, age / half_life)


def profile_vector(
    liked: np.ndarray,
    disliked: np.ndarray | None = None,
    weights: np.ndarray | Sequence[float] | None = None,
    negative_weight: float = 0.5,
) -> np.ndarray:
    """normalize(weighted mean of liked - negative_weight * mean of disliked)."""
    pos = normalize(as_matrix(liked, "liked vectors"))
    if len(pos) == 0:
        raise InputError("a profile needs at least one liked item")
    w = np.ones(len(pos)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(pos),) or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"weights must be {len(pos)} non-negative numbers, not all zero")
    query = (w[:, None] * pos).sum(axis=0) / w.sum()
    if disliked is not None and len(disliked):
        neg = normalize(as_matrix(disliked, "disliked vectors"))
        query = query - negative_weight * neg.mean(axis=0)
    if np.linalg.norm(query) < 1e-9:
        raise InputError("liked and disliked items cancel out; drop some disliked items")
    out: np.ndarray = normalize(query[None, :].astype(np.float32))[0]
    return out


def mmr(query: np.ndarray, candidates: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance: pick k rows of `candidates`, each maximising
    lambda * sim(query) - (1 - lambda) * max sim(already picked). Returns row positions."""
    c = normalize(as_matrix(candidates, "candidates"))
    relevance = c @ normalize(as_matrix(query, "query"))[0]
    chosen: list[int] = []
    closest = np.full(len(c), -np.inf)
    for _ in range(min(k, len(c))):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        score = diversity * relevance - (1.0 - diversity) * penalty
        score[chosen] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        closest = np.maximum(closest, c @ c[best])
    return chosen


def recommend_vectors(
    vectors: np.ndarray,
    liked: Sequence[int],
    disliked: Sequence[int] = (),
    options: RecommendOptions | None = None,
    exclude: Sequence[int] = (),
    weights: Sequence[float] | None = None,
) -> list[Scored]:
    """Recommend rows of `vectors` for liked/disliked row indices; inputs and `exclude` never
    come back. `weights` (one per liked row) or `options.half_life` weigh the liked rows."""
    opts = options or RecommendOptions()
    opts.check()
    x = normalize(as_matrix(vectors))
    n = len(x)
    bad = [
        i
        for i in (*liked, *disliked, *exclude)
        if not (isinstance(i, int | np.integer) and 0 <= i < n)
    ]
    if bad:
        raise InputError(f"row indices out of range 0..{n - 1}: {bad[:10]}")
    if not liked:
        raise InputError("give at least one liked item")
    w = recency_weights(len(liked), opts.half_life) if weights is None else weights
    query = profile_vector(x[list(liked)], x[list(disliked)], w, opts.negative_weight)
    scores = x @ query
    blocked = np.zeros(n, dtype=bool)
    blocked[[*liked, *disliked, *exclude]] = True
    allowed = np.flatnonzero(~blocked)
    if len(allowed) == 0:
        return []
    pool = opts.k if opts.diversity is None else max(opts.k, opts.pool)
    top = allowed[np.argsort(-scores[allowed], kind="stable")[:pool]]
    if opts.diversity is not None:
        top = top[mmr(query, x[top], opts.k, opts.diversity)]
    return [Scored(int(i), float(scores[i])) for i in top[: opts.k]]


def recommend(
    collection: Collection,
    like: Sequence[str] = (),
    unlike: Sequence[str] = (),
    *,
    history: Sequence[str] = (),
    history_weights: Sequence[float] | None = None,
    exclude: Sequence[str] = (),
    where: dict[str, Any] | None = None,
    options: RecommendOptions | None = None,
) -> list[Recommendation]:
    """Recommend items of a collection.

    `like` / `unlike`: item ids; `history`: ids the user interacted with, oldest first, weighed
    by `history_weights` or by recency (`options.half_life`). Every input id and `exclude`d
    (already seen) id is left out; `where` filters candidates on metadata before ranking.
    Unknown ids raise `NotFound` listing them.
    """
    opts = options or RecommendOptions()
    opts.check()
    for name, value in (
        ("like", like),
        ("unlike", unlike),
        ("history", history),
        ("exclude", exclude),
    ):
        if isinstance(value, str):
            raise InputError(f"{name} must be a list of ids; wrap a single id in a list")
    if not like and not history:
        raise InputError("give at least one liked item (--like ID) or a history")
    asked = list(dict.fromkeys([*like, *unlike, *history]))
    got, mat = collection.vectors(ids=asked)  # NotFound lists every unknown id
    vec = dict(zip(got, mat, strict=True))
    liked = list(like) + list(history)
    w_like = np.ones(len(like))
    if history:
        hw = (
            np.asarray(history_weights, dtype=np.float64)
            if history_weights is not None
            else recency_weights(len(history), opts.half_life)
        )
        if hw.shape != (len(history),):
            raise InputError(f"history_weights needs {len(history)} numbers, got {len(hw)}")
        w_like = np.concatenate([w_like, hw])
    neg = np.stack([vec[i] for i in unlike]) if unlike else None
    query = profile_vector(np.stack([vec[i] for i in liked]), neg, w_like, opts.negative_weight)
    blocked = set(asked) | set(exclude)
    pool = (opts.k if opts.diversity is None else max(opts.k, opts.pool)) + len(blocked)
    hits = [h for h in collection.search(query, k=pool, where=where) if h.id not in blocked]
    if opts.diversity is not None and len(hits) > opts.k:
        _, cand = collection.vectors(ids=[h.id for h in hits])
        hits = [hits[i] for i in mmr(query, cand, opts.k, opts.diversity)]
    items = {it.id: it for it in collection.get([h.id for h in hits[: opts.k]])}
    return [
        Recommendation(h.id, h.score, items[h.id].text, items[h.id].metadata)
        for h in hits[: opts.k]
    ]
