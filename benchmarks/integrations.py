"""What the framework adapters cost on top of embedbox, in one process, alternating rounds.

    .venv/bin/python benchmarks/integrations.py [--n 500] [--rounds 3]

Embedding: the same STS-B sentences through `Embedder.embed` and each adapter (all fp32), plus
sentence-transformers itself for the drop-in. Search: one collection of those sentences, the
same query vectors through `Collection.search` and each framework's vector-store query.
Reported: the median over rounds and the ratio to the embedbox call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def table(title: str, runs: dict[str, list[float]], unit: str, scale: float) -> None:
    base = statistics.median(next(iter(runs.values())))
    print(f"\n{title}")
    print(f"{'engine':48s} {unit:>10s} {'ratio':>7s}")
    for name, times in runs.items():
        med = statistics.median(times)
        print(f"{name:48s} {med * scale:10.3f} {med / base:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import numpy as np
    from llama_index.core.vector_stores.types import VectorStoreQuery
    from sentence_transformers import SentenceTransformer as Reference

    from embedbox import Collection, Embedder
    from embedbox.datasets import sts_b
    from embedbox.integrations import chroma, langchain, llamaindex, st_compat

    emb = Embedder(compute="fp32")
    texts = list(dict.fromkeys(t for p in sts_b("test") for t in (p.a, p.b)))[: args.n]
    lc = langchain.EmbedboxEmbeddings(embedder=emb)
    li = llamaindex.EmbedboxEmbedding(embedder=emb)
    ef = chroma.EmbedboxEmbeddingFunction(embedder=emb)
    st = st_compat.SentenceTransformer(embedder=emb)
    ref = Reference(str(emb.info.path), device="cpu")
    engines: dict[str, Callable[[], object]] = {
        "Embedder.embed": lambda: emb.embed(texts),
        "langchain EmbedboxEmbeddings.embed_documents": lambda: lc.embed_documents(texts),
        "llamaindex get_text_embedding_batch": lambda: li.get_text_embedding_batch(texts),
        "chroma EmbedboxEmbeddingFunction": lambda: ef(texts),
        "st_compat SentenceTransformer.encode": lambda: st.encode(texts),
        "sentence-transformers encode (fp32, batch 32)": lambda: ref.encode(texts),
    }
    runs: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name, fn in engines.items():
            runs[name].append(timed(fn))
    table(f"embedding {len(texts)} STS-B sentences", runs, "s", 1.0)

    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.open("bench", data_dir=tmp, create=True, embedder=emb)
        col.add(
            texts,
            ids=[f"t{i}" for i in range(len(texts))],
            metadatas=[{"i": i} for i in range(len(texts))],
        )
        lc_store = langchain.EmbedboxVectorStore(col)
        li_store = llamaindex.EmbedboxVectorStore(col)
        queries = emb.embed(texts[:50], input_type="query")
        qlists = [q.tolist() for q in queries]
        searches: dict[str, Callable[[], object]] = {
            "Collection.search(vector, k=10)": lambda: [col.search(q, k=10) for q in queries],
            "langchain similarity_search_by_vector": lambda: [
                lc_store.similarity_search_by_vector(q, k=10) for q in qlists
            ],
            "llamaindex EmbedboxVectorStore.query": lambda: [
                li_store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=10))
                for q in qlists
            ],
        }
        sruns: dict[str, list[float]] = {name: [] for name in searches}
        for _ in range(args.rounds):
            for name, fn in searches.items():
                sruns[name].append(timed(fn, 5) / len(queries))
        table("search, 10 hits a query (per query)", sruns, "ms", 1000.0)
        col.close()
    print(f"\ncpu: {os.cpu_count()} logical cores; numpy {np.__version__}")


if __name__ == "__main__":
    main()
