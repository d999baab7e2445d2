"""Rows/s of `embed-dataset`: 1 process vs the local pool vs Ray, against pure `Embedder.embed`.

    .venv/bin/python benchmarks/dataset.py [--rows 2000] [--shard-rows 250] [--skip-ray]

All runs use the same STS-B sentences, the same model and compute, in this process (the pool
and Ray start their own workers). Reference: `Embedder.embed` over all rows at once in this
process with every core, model already loaded. Each job run starts from an empty output folder
and its time includes what a user waits for: planning, worker start-up and model loading (pool,
Ray), reading, writing shards and the manifest. Figures are measured, never assumed; on a
shared machine compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def corpus(n: int) -> list[str]:
    from embedbox.datasets import sts_b

    texts = [t for split in ("train", "dev", "test") for p in sts_b(split) for t in (p.a, p.b)]
    return list(dict.fromkeys(texts))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--shard-rows", type=int, default=250)
    parser.add_argument("--compute", default="auto")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()

    from embedbox import Embedder, hardware
    from embedbox.scale import JobSpec, run_job
    from embedbox.scale.spec import available_cores

    cores = available_cores()
    texts = corpus(args.rows)
    work = Path(tempfile.mkdtemp(prefix="embedbox-bench-"))
    src = work / "rows.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    print(f"{len(texts)} STS-B rows, {cores} cores; {hardware.describe()}")

    began = time.perf_counter()
    emb = Embedder(compute=args.compute, threads=cores)
    load_s = time.perf_counter() - began
    emb.embed(texts[:64])  # warm-up
    began = time.perf_counter()
    emb.embed(texts)
    ref_s = time.perf_counter() - began
    ref = len(texts) / ref_s
    print(f"model load in this process: {load_s:.1f}s")
    print(f"{'run':<34}{'seconds':>9}{'rows/s':>9}{'vs embed':>10}{'steady*':>10}")
    print(f"{'Embedder.embed (reference)':<34}{ref_s:>9.2f}{ref:>9.1f}{1.0:>9.2f}x")

    def job(label: str, **kw: object) -> float:
        out = work / "out"
        shutil.rmtree(out, ignore_errors=True)
        spec = JobSpec(
            (str(src),),
            str(out),
            shard_rows=args.shard_rows,
            compute=args.compute,
            **kw,  # type: ignore[arg-type]
        )
        began = time.perf_counter()
        report = run_job(spec, embedder=emb if kw.get("workers") == 1 else None)
        seconds = time.perf_counter() - began
        assert report.total_rows == len(texts)
        rate = len(texts) / seconds
        shards = json.loads((out / "manifest.json").read_text())["shards"].values()
        busy = sum(s["seconds"] for s in shards) / report.workers  # per-worker time in shards
        steady = len(texts) / busy
        print(f"{label:<34}{seconds:>9.2f}{rate:>9.1f}{rate / ref:>9.2f}x{steady:>10.1f}")
        return rate

    one = job("job, 1 process (model loaded)", workers=1, threads=cores)
    pool = job(f"job, local pool of {cores}", workers=cores)
    print(f"local pool vs 1 process: {pool / one:.2f}x")
    if not args.skip_ray:
        ray_rate = job(f"job, ray (local, {cores} actors)", engine="ray", workers=cores)
        print(f"ray vs 1 process: {ray_rate / one:.2f}x; ray vs local pool: {ray_rate / pool:.2f}x")
    print("* steady: rows / (time inside shards per worker), i.e. without start-up and loading")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
