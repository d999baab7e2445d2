"""`make demo`: the main jobs on the shipped default model and shipped corpora.

Run with `python examples/demo.py`. Each step prints what it did and how long it took.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from embedbox import Collection, Embedder, hardware
from embedbox.datasets import lee_background, sts_b
from embedbox.similarity import top_k
from embedbox.tasks.cluster import ClusterOptions, cluster_collection
from embedbox.tasks.projection import write_map
from embedbox.tasks.recommend import RecommendOptions, recommend
from embedbox.types import Mode, Where

console = Console()


def most_similar_pairs(emb: Embedder) -> None:
    sentences = list(dict.fromkeys(t for p in sts_b("test")[:400] for t in (p.a, p.b)))
    start = time.perf_counter()
    vecs = emb.embed(sentences)
    seconds = time.perf_counter() - start
    console.print(
        f"embedded {len(sentences)} STS-B sentences in {seconds:.1f}s "
        f"({len(sentences) / seconds:.0f} texts/s, compute {emb.describe()['compute']})"
    )
    scores = vecs @ vecs.T
    np.fill_diagonal(scores, -1)
    scores[np.tril_indices(len(scores))] = -1  # each unordered pair once
    idx, best = top_k(scores.reshape(1, -1), 6)
    table = Table(title="Most similar pairs")
    table.add_column("cosine", justify="right")
    table.add_column("sentence A")
    table.add_column("sentence B")
    for flat, score in zip(idx[0].tolist(), best[0].tolist(), strict=True):
        i, j = divmod(flat, len(sentences))
        table.add_row(f"{score:.3f}", sentences[i], sentences[j])
    console.print(table)


def similarity_table(emb: Embedder) -> None:
    texts = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The stock market fell sharply today.",
        "Shares dropped after the earnings report.",
        "A man is playing the guitar.",
    ]
    matrix = emb.similarity(texts)
    table = Table(title="Similarity table")
    table.add_column("")
    for i in range(len(texts)):
        table.add_column(f"[{i}]", justify="right")
    for i, text in enumerate(texts):
        table.add_row(f"[{i}] {text}", *(f"{v:.2f}" for v in matrix[i].tolist()))
    console.print(table)


def news_collection(emb: Embedder, where: Path) -> Collection:
    """Put gensim's Lee news corpus (300 articles) in a collection; re-runs embed nothing new."""
    articles = lee_background()
    col = Collection.open(where / "lee-news", model=emb.name, create=True, embedder=emb)
    start = time.perf_counter()
    stats = col.upsert_stats(
        articles,
        ids=[f"lee-{n}" for n in range(1, len(articles) + 1)],
        metadatas=[{"line": n, "words": len(a.split())} for n, a in enumerate(articles, 1)],
    )
    console.print(
        f"collection {col.name!r} in {where}: {col.count()} news articles "
        f"({stats.added} added, {stats.unchanged} unchanged) in {time.perf_counter() - start:.1f}s"
    )
    return col


def searches(col: Collection) -> None:
    queries: tuple[tuple[str, Mode, Where | None], ...] = (
        ("bushfires threatening homes", "semantic", None),
        ("Shoalhaven", "keyword", None),
        ("peace talks in the Middle East", "hybrid", {"words": {"$lt": 200}}),
    )
    for query, mode, where in queries:
        title = f"{mode} search: {query!r}" + (f" where {where}" if where else "")
        table = Table(title=title)
        table.add_column("score", justify="right")
        table.add_column("id")
        table.add_column("text")
        for hit in col.search(query, k=3, mode=mode, where=where):
            table.add_row(f"{hit.score:.3f}", hit.id, hit.text[:90] + "…")
        console.print(table)


def recommendations_and_clusters(col: Collection, where: Path) -> None:
    liked = col.search("bushfires threatening homes", k=1)[0]
    recs = recommend(col, like=[liked.id], options=RecommendOptions(k=3, diversity=0.7))
    table = Table(title=f"More like {liked.id} ({liked.text[:50]}…), diversified")
    table.add_column("score", justify="right")
    table.add_column("id")
    table.add_column("text")
    for rec in recs:
        table.add_row(f"{rec.score:.3f}", rec.id, rec.text[:90] + "…")
    console.print(table)

    ids, texts, result = cluster_collection(col, ClusterOptions(method="kmeans", k=6))
    table = Table(title=f"k-means clusters of {len(ids)} articles")
    table.add_column("cluster", justify="right")
    table.add_column("size", justify="right")
    table.add_column("keywords")
    for info in result.clusters:
        table.add_row(str(info.label), str(info.size), ", ".join(info.keywords[:6]))
    console.print(table)
    _, vectors = col.vectors(ids=ids)
    path, _ = write_map(
        vectors,
        where / "lee-news-map.html",
        colors=result.labels.tolist(),
        hover=texts,
        ids=ids,
        method="pca",
    )
    console.print(f"interactive map of the collection: {path}")


def main() -> None:
    warnings.simplefilter("ignore")
    console.rule("embedbox demo")
    console.print(f"machine: {hardware.describe()}")
    emb = Embedder()
    console.print(
        f"model: {emb.name} ({emb.dim}-d, max {emb.max_tokens} tokens) from {emb.info.path}"
    )
    most_similar_pairs(emb)
    similarity_table(emb)
    where = Path(os.environ.get("EMBEDBOX_DEMO_DIR", "demo-data")).resolve()
    col = news_collection(emb, where)
    searches(col)
    recommendations_and_clusters(col, where)
    col.close()


if __name__ == "__main__":
    main()
