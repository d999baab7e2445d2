"""Larger than RAM: millions of vectors in one collection, searched under a memory cap.

    python benchmarks/large.py --n 5000000 --cap 2G            # about 1 h on 2 busy cores
    python benchmarks/large.py --n 500000 --cap 512M --keep /tmp/large   # a quick look

The collection holds 384-d vectors:
- the MiniLM vectors of 60 000 shipped sentences (benchmarks/search.py's set),
- the 400 000 GloVe 6B 50d vectors, mapped into 384 dimensions by a fixed random orthogonal
  map (inner products between them are unchanged),
- synthetic points for the rest: each a real vector of either set (picked at random) plus
  Gaussian noise of norm 0.6, re-normalised (cosine about 0.86 to its source: near-duplicates
  and paraphrases around real data), seeded per block so every run makes the same points.
Queries are the 300 held-out sentences of the MiniLM set. Each phase runs in its own process
inside a memory cgroup limited to `--cap` (page cache included), created under this process's
own cgroup (v1 or v2; `systemd-run --scope -p MemoryMax=` does the same where systemd runs).
Under the cap `AnnOptions()` chooses the IVF index by itself (HNSW would need the vectors
resident). Exact top-10 truth is computed by streaming the vector file (outside the cap, the
pages dropped behind it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DIM, K, BLOCK = 384, 10, 20_000


# ---- data ---------------------------------------------------------------------------------
def real_sets() -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """(MiniLM vectors then the GloVe vectors lifted to 384-d, sentences, words, queries)."""
    sys.path.insert(0, str(HERE))
    import search
    import stores

    mini, queries, sentences = stores.load("minilm60k", 300)
    glove, _, words = stores.load("glove400k", 0)
    rot, _ = np.linalg.qr(np.random.default_rng(384).normal(size=(DIM, DIM)))
    sources = np.empty((len(mini) + len(glove), DIM), np.float32)
    sources[: len(mini)] = mini
    for at in range(0, len(glove), 50_000):  # orthonormal rows: an isometry into 384-d
        sources[len(mini) + at : len(mini) + at + 50_000] = glove[at : at + 50_000] @ rot[:50, :]
    del search
    return sources, sentences, words, queries


def synthetic(block: int, size: int, sources: np.ndarray) -> np.ndarray:
    """`size` points near random real vectors (documented in the module docstring)."""
    rng = np.random.default_rng(10_000 + block)
    base = sources[rng.integers(0, len(sources), size)]
    noise = rng.normal(size=(size, DIM)).astype(np.float32)
    noise *= 0.6 / np.linalg.norm(noise, axis=1, keepdims=True)
    x = base + noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ---- phases (each a fresh process, inside the cap) ------------------------------------------
def phase_ingest(folder: Path, n: int) -> dict[str, Any]:
    from embedbox.store.collection import Collection

    sources, sentences, words, queries = real_sets()
    np.save(folder.parent / "queries.npy", queries)
    texts = sentences + words
    col = Collection.open(folder, "bench-384", create=True, kind="vector", dim=DIM)
    t = time.perf_counter()
    for at in range(0, n, BLOCK):
        end = min(n, at + BLOCK)
        if end <= len(sources):
            vecs, txt = sources[at:end], texts[at:end]
        else:
            lo = max(at, len(sources))
            vecs = np.concatenate([sources[at:lo], synthetic(at // BLOCK, end - lo, sources)])
            txt = texts[at:lo] + [f"synthetic {i}" for i in range(lo, end)]
        col.add(
            txt,
            ids=[str(i) for i in range(at, end)],
            metadatas=[{"grp": i % 100} for i in range(at, end)],
            vectors=vecs,
        )
        if at // BLOCK % 25 == 0:
            print(f"ingest {end}/{n} {time.perf_counter() - t:.0f}s", flush=True)
    col.close()
    return {"ingest_s": time.perf_counter() - t}


def phase_index(folder: Path) -> dict[str, Any]:
    from embedbox.store.collection import Collection

    q = np.load(folder.parent / "queries.npy")
    t = time.perf_counter()
    col = Collection.open(folder)
    col.search(q[0], k=K, include=())  # builds the index the options choose
    out = {"index_s": time.perf_counter() - t, "kind": col._ann().kind}
    out["lists"] = int(col._ann().index.nlist) if out["kind"] == "ivf" else None
    col.close()
    return out


def phase_query(folder: Path, efforts: list[int], rerank: int) -> dict[str, Any]:
    import faiss

    from embedbox.store.ann import AnnOptions
    from embedbox.store.collection import Collection

    faiss.omp_set_num_threads(1)
    q = np.load(folder.parent / "queries.npy")
    truth = dict(np.load(folder.parent / "truth.npz"))
    t = time.perf_counter()
    col = Collection.open(folder, ann=AnnOptions(rerank=rerank))
    col.search(q[0], k=K, include=())
    out: dict[str, Any] = {"reopen_s": time.perf_counter() - t, "kind": col._ann().kind}
    out["rerank"] = rerank
    ann = col._ann()
    for effort in efforts:
        ann.expansion = effort
        for name, where, want in [
            ("all", None, truth["all"]),
            ("10%", {"grp": {"$lt": 10}}, truth["10%"]),
        ]:
            got, lat = [], []
            for v in q:
                s = time.perf_counter()
                got.append({int(h.id) for h in col.search(v, k=K, where=where, include=())})
                lat.append(time.perf_counter() - s)
            ms = np.array(lat) * 1000
            r = float(
                np.mean([len(g & set(w.tolist())) / K for g, w in zip(got, want, strict=True)])
            )
            out[f"{name} probes={effort}"] = {
                "recall": r, "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))
            }  # fmt: skip
            print(name, effort, out[f"{name} probes={effort}"], flush=True)
    _, p50 = _timed(lambda v: col.search(v, k=K), q)
    out["text p50"] = p50
    col.close()
    return out


def _timed(fn: Any, q: np.ndarray) -> tuple[None, float]:
    lat = []
    for v in q:
        s = time.perf_counter()
        fn(v)
        lat.append(time.perf_counter() - s)
    return None, float(np.percentile(np.array(lat) * 1000, 50))


def truth(folder: Path, n: int) -> None:
    """Exact top-k of every query, over the vector file in blocks (page cache dropped behind)."""
    from embedbox.store import vecfile

    q = np.load(folder.parent / "queries.npy")
    path = folder / vecfile.file_name(0)
    m = vecfile.open_mapped(path, DIM, "float32", n)
    grp = np.arange(n) % 100
    best = {"all": [], "10%": []}
    fd = os.open(path, os.O_RDONLY)
    for at in range(0, n, 200_000):
        block = np.ascontiguousarray(m.matrix[at : at + 200_000])
        s = q @ block.T
        ids = np.arange(at, at + len(block))
        for name, mask in [("all", None), ("10%", grp[at : at + len(block)] < 10)]:
            ss = s if mask is None else np.where(mask, s, -np.inf)
            top = np.argpartition(-ss, K, axis=1)[:, :K]
            best[name].append((np.take_along_axis(ss, top, 1), ids[top]))
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    out = {}
    for name, parts in best.items():
        scores = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        out[name] = np.take_along_axis(ids, top, 1)
    np.savez(folder.parent / "truth.npz", **out)


# ---- the cap --------------------------------------------------------------------------------
class Cap:
    """A memory cgroup under this process's own, limited to `limit` bytes (page cache
    included); None when cgroups cannot be written here."""

    def __init__(self, limit: int) -> None:
        self.path: Path | None = None
        self.v2 = False
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctl, rel = line.split(":", 2)
            if ctl == "memory":
                base = Path("/sys/fs/cgroup/memory") / rel.lstrip("/")
            elif ctl == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
                base, self.v2 = Path("/sys/fs/cgroup") / rel.lstrip("/"), True
            else:
                continue
            path = base / f"embedbox-large-{os.getpid()}"
            try:
                path.mkdir()
                (path / ("memory.max" if self.v2 else "memory.limit_in_bytes")).write_text(
                    str(limit)
                )
                self.path = path
                return
            except OSError:
                continue

    def peak(self) -> int | None:
        if self.path is None:
            return None
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        f = self.path / name
        return int(f.read_text()) if f.exists() else None

    def reset_peak(self) -> None:
        if self.path is not None and not self.v2:
            (self.path / "memory.max_usage_in_bytes").write_text("0")

    def command(self, cmd: list[str]) -> list[str]:
        if self.path is None:
            return cmd
        procs = self.path / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *cmd]

    def remove(self) -> None:
        if self.path is not None:
            self.path.rmdir()


def run_phase(cap: Cap, args: list[str]) -> dict[str, Any]:
    cap.reset_peak()
    cmd = cap.command([sys.executable, __file__, "--phase", *args])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=6 * 3600)
    print(proc.stdout[-3000:], end="", flush=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"phase {args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = dict(json.loads(lines[-1].removeprefix("RESULT ")))
    out["cgroup_peak_mb"] = (cap.peak() or 0) / 2**20
    return out


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=5_000_000)
    ap.add_argument("--cap", default="2G", help="memory cap of each phase (K, M, G)")
    ap.add_argument("--probes", default="16,32,64,128")
    ap.add_argument("--rerank", type=int, default=None, help="candidates re-scored per hit")
    ap.add_argument("--keep", help="keep the collection in this folder (reused when present)")
    ap.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        kind, folder = args.phase[0], Path(args.phase[1])
        if kind == "ingest":
            res = phase_ingest(folder, int(args.phase[2]))
        elif kind == "index":
            res = phase_index(folder)
        else:
            res = phase_query(
                folder, [int(p) for p in args.phase[2].split(",")], int(args.phase[3])
            )
        res["vm_hwm_mb"] = vm_hwm_mb()
        print("RESULT " + json.dumps(res))
        return
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    limit = int(float(args.cap[:-1]) * units[args.cap[-1].upper()])
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="embedbox-large-"))
    root.mkdir(parents=True, exist_ok=True)
    folder = root / "col"
    cap = Cap(limit)
    print(f"cap: {args.cap} in {cap.path or 'no cgroup (uncapped!)'}")
    report: dict[str, Any] = {"n": args.n, "cap": args.cap}
    try:
        if not (folder / "collection.db").exists():
            report["ingest"] = run_phase(cap, ["ingest", str(folder), str(args.n)])
        report["disk_mb"] = {
            p.name: p.stat().st_blocks * 512 / 2**20 for p in folder.iterdir() if p.is_file()
        }
        if not (folder / "index.faiss").exists():
            report["index"] = run_phase(cap, ["index", str(folder)])
        report["disk_mb"] = {
            p.name: p.stat().st_blocks * 512 / 2**20 for p in folder.iterdir() if p.is_file()
        }
        if not (root / "truth.npz").exists():
            t = time.perf_counter()
            truth(folder, args.n)
            report["truth_s"] = time.perf_counter() - t
        from embedbox.store.ann import AnnOptions

        rerank = args.rerank or AnnOptions().rerank
        report["query"] = run_phase(cap, ["query", str(folder), args.probes, str(rerank)])
        print(json.dumps(report, indent=1))
        (root / "report.json").write_text(json.dumps(report, indent=1))
    finally:
        cap.remove()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
