"""`make demo`: the main jobs on the shipped default model and shipped corpora.

Run with `python -m embedbox.demo`. Each step prints what it did and how long it took.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table

from embedbox import Embedder, hardware
from embedbox.datasets import sts_b
from embedbox.similarity import top_k

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


if __name__ == "__main__":
    main()
