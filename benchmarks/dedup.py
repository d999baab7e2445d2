"""Memory and time of duplicate mining without an n x n matrix.

    .venv/bin/python benchmarks/dedup.py [--n 100000] [--dim 384] [--chunk 2048]

Random unit vectors with 100 planted near-duplicate pairs; chunked exact mining must find all
of them. Prints time, pairs found, traced peak of Python allocations and the process's peak RSS
next to what a full n x n float32 matrix would take.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from embedbox.tasks.mining import MiningOptions, mine_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--chunk", type=int, default=2048)
    args = parser.parse_args()
    n, dim = args.n, args.dim
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    src = rng.choice(n // 2, 100, replace=False)
    x[src + n // 2] = x[src] + 0.05 * rng.standard_normal((100, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    start = time.perf_counter()
    pairs = mine_pairs(x, MiningOptions(threshold=0.9, strategy="exact", chunk=args.chunk))
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"n={n} dim={dim} chunk={args.chunk}: {len(pairs)} pairs (100 planted) in {seconds:.1f}s")
    print(f"vectors {x.nbytes / 2**20:.1f} MiB; traced peak {peak / 2**20:.1f} MiB")
    print(f"peak RSS before {rss_before:.0f} MiB, after {rss_after:.0f} MiB")
    print(f"a full n x n float32 matrix would take {n * n * 4 / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
