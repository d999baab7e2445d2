"""Cluster vectors: k-means (k given or chosen by silhouette), HDBSCAN, agglomerative with a
distance threshold, and fast community detection for large sets. Each cluster is described by
its size, representative items (closest to the centroid) and class-based TF-IDF keywords.

Label -1 means noise / unassigned (HDBSCAN, community detection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedbox.errors import InputError, require
from embedbox.similarity import as_matrix, iter_chunks, normalize

if TYPE_CHECKING:
    from embedbox.store.collection import Collection

__all__ = [
    "ClusterInfo",
    "ClusterOptions",
    "ClusterResult",
    "choose_k",
    "class_tfidf_keywords",
    "cluster",
    "cluster_collection",
    "cluster_labels",
    "community_labels",
    "describe",
]

ClusterMethod = Literal["kmeans", "hdbscan", "agglomerative", "community"]
METHODS: tuple[str, ...] = ("kmeans", "hdbscan", "agglomerative", "community")


@dataclass(frozen=True)
class ClusterOptions:
    """How to cluster. `k=None` with k-means picks k in `k_range` by silhouette."""

    method: ClusterMethod = "kmeans"
    k: int | None = None
    k_range: tuple[int, int] = (2, 12)
    min_cluster_size: int = 5
    distance_threshold: float = 0.6  # agglomerative: cosine distance at which merging stops
    linkage: Literal["average", "complete", "single", "ward"] = "average"
    threshold: float = 0.75  # community: cosine similarity to count as neighbours
    seed: int = 0
    n_representatives: int = 3
    n_keywords: int = 8


@dataclass(frozen=True)
class ClusterInfo:
    """One cluster: its label, size, representative item indices and keywords."""

    label: int
    size: int
    representatives: list[int]
    keywords: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "size": self.size,
            "representatives": self.representatives,
            "keywords": self.keywords,
        }


@dataclass(frozen=True)
class ClusterResult:
    """Per-item labels (-1 = noise) and a description of each cluster, largest first."""

    labels: np.ndarray
    clusters: list[ClusterInfo]
    method: str
    silhouette: float | None = None

    @property
    def n_clusters(self) -> int:
        return len(self.clusters)

    @property
    def noise(self) -> int:
        return int((self.labels < 0).sum())


def cluster_labels(vectors: np.ndarray, options: ClusterOptions | None = None) -> np.ndarray:
    """Cluster labels (int, -1 = noise) for each row of `vectors` (cosine geometry)."""
    opts = options or ClusterOptions()
    x = normalize(as_matrix(vectors))
    n = len(x)
    if n < 2:
        raise InputError(f"clustering needs at least 2 items, got {n}")
    if opts.method == "kmeans":
        k = opts.k if opts.k is not None else choose_k(x, opts.k_range, opts.seed)[0]
        return _kmeans(x, k, opts.seed)
    if opts.method == "hdbscan":
        require("sklearn", "tasks")
        from sklearn.cluster import HDBSCAN

        if opts.min_cluster_size < 2:
            raise InputError("min_cluster_size must be at least 2 for HDBSCAN")
        # On unit vectors euclidean distance is a monotone function of cosine distance.
        labels = HDBSCAN(min_cluster_size=min(opts.min_cluster_size, n), copy=True).fit_predict(x)
        return np.asarray(labels, dtype=np.int64)
    if opts.method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        # Ward needs euclidean distance; on unit vectors that is sqrt(2 * cosine distance).
        metric = "euclidean" if opts.linkage == "ward" else "cosine"
        if opts.k is not None:
            model = AgglomerativeClustering(
                n_clusters=_check_k(opts.k, n), metric=metric, linkage=opts.linkage
            )
        else:
            if opts.distance_threshold <= 0:
                raise InputError("distance_threshold must be positive")
            threshold = opts.distance_threshold
            model = AgglomerativeClustering(
                n_clusters=None,
                distance_threshold=np.sqrt(2 * threshold) if metric == "euclidean" else threshold,
                metric=metric,
                linkage=opts.linkage,
            )
        return np.asarray(model.fit_predict(x), dtype=np.int64)
    if opts.method == "community":
        return community_labels(x, opts.threshold, opts.min_cluster_size)
    raise InputError(f"unknown cluster method {opts.method!r}; use {', '.join(METHODS)}")


def _check_k(k: int, n: int) -> int:
    if not 2 <= k <= n:
        raise InputError(f"k must be between 2 and the number of items ({n}), got {k}")
    return k


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    require("sklearn", "tasks")
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=_check_k(k, len(x)), n_init=4, random_state=seed)
    return np.asarray(model.fit_predict(x), dtype=np.int64)


def choose_k(
    vectors: np.ndarray, k_range: tuple[int, int] = (2, 12), seed: int = 0, sample: int = 4000
) -> tuple[int, dict[int, float]]:
    """The k in `k_range` (inclusive) with the best cosine silhouette, and every k's score."""
    require("sklearn", "tasks")
    from sklearn.metrics import silhouette_score

    x = normalize(as_matrix(vectors))
    lo, hi = k_range[0], min(k_range[1], len(x) - 1)
    if lo < 2 or hi < lo:
        raise InputError(
            f"k range {k_range} is not usable for {len(x)} items; use 2 <= lo <= hi < n"
        )
    scores: dict[int, float] = {}
    for k in range(lo, hi + 1):
        labels = _kmeans(x, k, seed)
        if len(set(labels.tolist())) < 2:
            continue
        scores[k] = float(
            silhouette_score(
                x, labels, metric="cosine", sample_size=min(sample, len(x)), random_state=seed
            )
        )
    best = max(scores, key=lambda k: scores[k]) if scores else lo
    return best, scores


def community_labels(
    vectors: np.ndarray, threshold: float = 0.75, min_size: int = 5, chunk: int = 2048
) -> np.ndarray:
    """Fast community detection (as in sentence-transformers): items with the most neighbours
    above `threshold` seed communities; each item joins at most one; communities smaller than
    `min_size` are dropped (label -1). Memory is bounded by `chunk` x n similarities."""
    if not -1.0 <= threshold <= 1.0:
        raise InputError("threshold must be a cosine similarity between -1 and 1")
    if min_size < 1:
        raise InputError("min_size must be at least 1")
    x = normalize(as_matrix(vectors))
    n = len(x)
    neighbours: list[np.ndarray] = []
    for start, block in iter_chunks(x, chunk):
        sims = block @ x.T
        for row_i, row in enumerate(sims):
            row[start + row_i] = 1.0  # an item is its own neighbour
            idx = np.flatnonzero(row >= threshold)
            neighbours.append(idx[np.argsort(-row[idx], kind="stable")])
    order = sorted(range(n), key=lambda i: -len(neighbours[i]))
    labels = np.full(n, -1, dtype=np.int64)
    next_label = 0
    for seed_i in order:
        if len(neighbours[seed_i]) < min_size:
            break
        if labels[seed_i] >= 0:
            continue
        members = [int(j) for j in neighbours[seed_i] if labels[j] < 0]
        if len(members) < min_size:
            continue
        labels[members] = next_label
        next_label += 1
    return labels


def describe(
    vectors: np.ndarray,
    labels: np.ndarray,
    texts: Sequence[str] | None = None,
    n_representatives: int = 3,
    n_keywords: int = 8,
) -> list[ClusterInfo]:
    """Size, representatives (closest to the centroid) and c-TF-IDF keywords per cluster."""
    x = normalize(as_matrix(vectors))
    labels = np.asarray(labels)
    if len(labels) != len(x):
        raise InputError(f"{len(x)} vectors but {len(labels)} labels")
    ids = sorted({int(v) for v in labels.tolist() if v >= 0})
    keywords = class_tfidf_keywords(texts, labels, ids, n_keywords) if texts is not None else {}
    out = []
    for c in ids:
        members = np.flatnonzero(labels == c)
        centroid = normalize(x[members].mean(axis=0, keepdims=True))[0]
        closest = members[np.argsort(-(x[members] @ centroid), kind="stable")[:n_representatives]]
        out.append(ClusterInfo(c, len(members), [int(i) for i in closest], keywords.get(c, [])))
    return sorted(out, key=lambda info: (-info.size, info.label))


_TOKEN = r"(?u)\b[a-zA-Z][a-zA-Z]+\b"


def class_tfidf_keywords(
    texts: Sequence[str], labels: np.ndarray, ids: Sequence[int], n: int = 8
) -> dict[int, list[str]]:
    """Class-based TF-IDF (BERTopic's c-TF-IDF): each cluster's texts are one document; a word
    scores tf(word, cluster) * log(1 + mean words per cluster / frequency of word overall)."""
    require("sklearn", "tasks")
    from sklearn.feature_extraction.text import CountVectorizer

    if len(texts) != len(labels):
        raise InputError(f"{len(texts)} texts but {len(labels)} labels")
    if not ids or n <= 0:
        return {}
    docs = [" ".join(t for t, lab in zip(texts, labels, strict=True) if lab == c) for c in ids]
    try:
        vec = CountVectorizer(stop_words="english", token_pattern=_TOKEN, lowercase=True)
        counts = vec.fit_transform(docs).toarray().astype(np.float64)
    except ValueError:  # only stop words / no words at all
        return {c: [] for c in ids}
    words = vec.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    avg_words = counts.sum() / len(ids)
    idf = np.log(1.0 + avg_words / np.maximum(counts.sum(axis=0), 1.0))
    scores = tf * idf
    out: dict[int, list[str]] = {}
    for row, c in enumerate(ids):
        top = np.argsort(-scores[row], kind="stable")[:n]
        out[c] = [str(words[i]) for i in top if scores[row, i] > 0]
    return out


def cluster(
    vectors: np.ndarray,
    texts: Sequence[str] | None = None,
    options: ClusterOptions | None = None,
) -> ClusterResult:
    """Cluster and describe: labels plus a `ClusterInfo` per cluster (largest first)."""
    opts = options or ClusterOptions()
    x = normalize(as_matrix(vectors))
    labels = cluster_labels(x, opts)
    clusters = describe(x, labels, texts, opts.n_representatives, opts.n_keywords)
    return ClusterResult(labels, clusters, opts.method, _silhouette(x, labels, opts.seed))


def _silhouette(x: np.ndarray, labels: np.ndarray, seed: int) -> float | None:
    require("sklearn", "tasks")
    from sklearn.metrics import silhouette_score

    keep = labels >= 0
    found = len(set(labels[keep].tolist()))
    if found < 2 or found >= keep.sum():
        return None
    size = min(4000, int(keep.sum()))
    return float(
        silhouette_score(
            x[keep], labels[keep], metric="cosine", sample_size=size, random_state=seed
        )
    )


def cluster_collection(
    collection: Collection,
    options: ClusterOptions | None = None,
    where: dict[str, Any] | None = None,
    write_field: str | None = None,
) -> tuple[list[str], list[str], ClusterResult]:
    """Cluster a collection's documents -> (ids, texts, result). With `write_field`, each
    document's cluster label (-1 = noise) is written into its metadata under that key."""
    ids, vectors = collection.vectors(where=where)
    if len(ids) < 2:
        raise InputError(
            f"collection {collection.name!r} has {len(ids)} matching documents; need 2"
        )
    items = {it.id: it for it in collection.items(where=where)}
    texts = [items[i].text for i in ids]
    result = cluster(vectors, texts, options)
    if write_field:
        metas = [
            {**items[i].metadata, write_field: int(lab)}
            for i, lab in zip(ids, result.labels, strict=True)
        ]
        collection.update(ids, metadatas=metas)
    return ids, texts, result
