"""Paraphrase mining and near-duplicate detection without an n x n matrix.

Exact search walks the similarity matrix block by block (`chunk` x `chunk` floats at a time);
for large n a FAISS HNSW index finds each item's nearest neighbours instead. Pairs are
then grouped (union-find) so each duplicate group keeps one item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedbox.errors import InputError
from embedbox.similarity import as_matrix, normalize
from embedbox.types import Progress

if TYPE_CHECKING:
    from embedbox.store.collection import Collection

__all__ = [
    "DedupReport",
    "MiningOptions",
    "Pair",
    "dedup_collection",
    "dedup_ids",
    "duplicate_groups",
    "duplicates_to_drop",
    "mine_pairs",
]

Strategy = Literal["auto", "exact", "ann"]
DedupAction = Literal["report", "tag", "drop"]
ANN_FROM = 200_000  # `auto` switches to the ANN index from this many items


@dataclass(frozen=True)
class Pair:
    """Items `a` < `b` (row indices) with cosine similarity `score`."""

    a: int
    b: int
    score: float


@dataclass(frozen=True)
class MiningOptions:
    threshold: float = 0.9
    top_k: int | None = None  # keep at most this many partners per item (None: all above threshold)
    strategy: Strategy = "auto"
    chunk: int = 2048
    ann_neighbours: int = 16
    max_pairs: int = 10_000_000


def mine_pairs(
    vectors: np.ndarray, options: MiningOptions | None = None, progress: Progress | None = None
) -> list[Pair]:
    """All pairs with cosine similarity >= threshold (or each item's top-k above it), best first."""
    opts = options or MiningOptions()
    if not -1.0 <= opts.threshold <= 1.0:
        raise InputError("threshold must be a cosine similarity between -1 and 1")
    if opts.top_k is not None and opts.top_k < 1:
        raise InputError("top_k must be at least 1")
    if opts.chunk < 1:
        raise InputError("chunk must be at least 1")
    x = normalize(as_matrix(vectors))
    strategy = opts.strategy
    if strategy == "auto":
        strategy = "ann" if len(x) >= ANN_FROM else "exact"
    if strategy == "exact":
        a, b, s = _exact(x, opts, progress)
    elif strategy == "ann":
        a, b, s = _ann(x, opts, progress)
    else:
        raise InputError(f"unknown strategy {strategy!r}; use auto, exact or ann")
    order = np.lexsort((b, a, -s))
    return [Pair(int(a[i]), int(b[i]), float(s[i])) for i in order]


def _exact(
    x: np.ndarray, opts: MiningOptions, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, c = len(x), opts.chunk
    parts_a: list[np.ndarray] = []
    parts_b: list[np.ndarray] = []
    parts_s: list[np.ndarray] = []
    total = 0
    for start in range(0, n, c):
        rows = x[start : start + c]
        for col in range(start, n, c):  # upper triangle only: j >= i
            sims = rows @ x[col : col + c].T
            i, j = np.nonzero(sims >= opts.threshold)
            gi, gj = i + start, j + col
            keep = gj > gi
            if keep.any():
                parts_a.append(gi[keep].astype(np.int64))
                parts_b.append(gj[keep].astype(np.int64))
                parts_s.append(sims[i[keep], j[keep]].astype(np.float32))
                total += int(keep.sum())
                if total > opts.max_pairs:
                    raise InputError(
                        f"more than {opts.max_pairs} pairs reach similarity {opts.threshold}; "
                        "raise the threshold or set top_k"
                    )
        if progress is not None:
            progress(min(start + c, n), n)
    a, b, s = _concat(parts_a, parts_b, parts_s)
    if opts.top_k is not None:
        a, b, s = _limit_per_item(a, b, s, opts.top_k)
    return a, b, s


def _ann(
    x: np.ndarray, opts: MiningOptions, progress: Progress | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from embedbox.store.ann import AnnOptions, new_hnsw

    n = len(x)
    k = min(n, (opts.top_k or opts.ann_neighbours) + 1)
    index = new_hnsw(x.shape[1], AnnOptions())
    index.hnsw.efSearch = max(index.hnsw.efSearch, k)
    x = np.ascontiguousarray(x, np.float32)
    for start in range(0, n, 8192):
        index.add(x[start : start + 8192])
        if progress is not None:
            progress(min(start + 8192, n) // 2, n)
    parts_a, parts_b, parts_s = [], [], []
    for start in range(0, n, 8192):
        block = x[start : start + 8192]
        sims, nbr = index.search(block, k)  # inner products of unit vectors: cosines
        valid = nbr >= 0
        safe = np.where(valid, nbr, 0)
        rows = np.arange(start, start + len(block))[:, None].repeat(nbr.shape[1], axis=1)
        keep = valid & (safe != rows) & (sims >= opts.threshold)
        lo, hi = np.minimum(rows, safe)[keep], np.maximum(rows, safe)[keep]
        parts_a.append(lo)
        parts_b.append(hi)
        parts_s.append(sims[keep].astype(np.float32))
        if progress is not None:
            progress(n // 2 + min(start + 8192, n) // 2, n)
    a, b, s = _concat(parts_a, parts_b, parts_s)
    if len(a):  # the same pair is usually found from both ends
        _, first = np.unique(a * n + b, return_index=True)
        a, b, s = a[first], b[first], s[first]
    if opts.top_k is not None:
        a, b, s = _limit_per_item(a, b, s, opts.top_k)
    return a, b, s


def _concat(
    a: list[np.ndarray], b: list[np.ndarray], s: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not a:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32)
    return np.concatenate(a), np.concatenate(b), np.concatenate(s)


def _limit_per_item(
    a: np.ndarray, b: np.ndarray, s: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep a pair if it is among the k best of either of its items."""
    order = np.argsort(-s, kind="stable")
    seen: dict[int, int] = {}
    keep = np.zeros(len(a), dtype=bool)
    for i in order:
        ia, ib = int(a[i]), int(b[i])
        if seen.get(ia, 0) < k or seen.get(ib, 0) < k:
            keep[i] = True
            seen[ia] = seen.get(ia, 0) + 1
            seen[ib] = seen.get(ib, 0) + 1
    return a[keep], b[keep], s[keep]


def duplicate_groups(pairs: list[Pair], n: int) -> list[list[int]]:
    """Connected groups (size >= 2) of items linked by pairs; each group sorted, lowest first."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for p in pairs:
        if not (0 <= p.a < n and 0 <= p.b < n):
            raise InputError(f"pair ({p.a}, {p.b}) is outside 0..{n - 1}")
        ra, rb = find(p.a), find(p.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in {q for p in pairs for q in (p.a, p.b)}:
        groups.setdefault(find(i), []).append(i)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def duplicates_to_drop(groups: list[list[int]]) -> list[int]:
    """Indices to remove so each group keeps its first (lowest-index) item."""
    return sorted(i for g in groups for i in g[1:])


@dataclass(frozen=True)
class DedupReport:
    """Duplicate pairs and groups by id; `changed` = documents dropped or tagged."""

    pairs: list[tuple[str, str, float]]
    groups: list[list[str]]
    action: DedupAction
    changed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "pairs": [{"a": a, "b": b, "score": round(s, 6)} for a, b, s in self.pairs],
            "groups": self.groups,
            "duplicates": sum(len(g) - 1 for g in self.groups),
            "changed": self.changed,
        }


def dedup_ids(
    ids: Sequence[str],
    vectors: np.ndarray,
    options: MiningOptions | None = None,
    progress: Progress | None = None,
) -> tuple[list[tuple[str, str, float]], list[list[str]]]:
    """Pairs and groups of near-duplicates named by id (each group's first id is the keeper)."""
    if len(ids) != len(vectors):
        raise InputError(f"{len(ids)} ids but {len(vectors)} vectors")
    pairs = mine_pairs(vectors, options, progress)
    groups = duplicate_groups(pairs, len(ids))
    return [(ids[p.a], ids[p.b], p.score) for p in pairs], [[ids[i] for i in g] for g in groups]


def dedup_collection(
    collection: Collection,
    options: MiningOptions | None = None,
    action: DedupAction = "report",
    where: dict[str, Any] | None = None,
    tag_field: str = "duplicate_of",
    progress: Progress | None = None,
) -> DedupReport:
    """Find near-duplicates in a collection; `action` "drop" deletes all but the first of each
    group, "tag" writes the keeper's id into the others' metadata under `tag_field`."""
    if action not in ("report", "tag", "drop"):
        raise InputError(f"action must be report, tag or drop, not {action!r}")
    ids, vectors = collection.vectors(where=where)
    if not ids:
        return DedupReport([], [], action, 0)
    pairs, groups = dedup_ids(ids, vectors, options, progress)
    extra = [(g[0], i) for g in groups for i in g[1:]]
    if action == "drop" and extra:
        changed = collection.delete(ids=[i for _, i in extra])
    elif action == "tag" and extra:
        items = collection.get([i for _, i in extra])
        metas = [
            {**it.metadata, tag_field: keep} for (keep, _), it in zip(extra, items, strict=True)
        ]
        collection.update([it.id for it in items], metadatas=metas)
        changed = len(items)
    else:
        changed = 0
    return DedupReport(pairs, groups, action, changed)
