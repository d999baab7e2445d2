"""Static table vs its transformer: texts/s on the same STS-B test sentences, one process.

    embedbox distill all-MiniLM-L6-v2 -o /tmp/minilm-static
    python benchmarks/static.py /tmp/minilm-static [--n 1000] [--rounds 3]

Rounds alternate the two models' order; each keeps its best round.
"""

from __future__ import annotations

import argparse
import time

from embedbox import Embedder
from embedbox.datasets import sts_b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("static", help="a static model folder (embedbox distill's output)")
    ap.add_argument("--base", default="all-MiniLM-L6-v2")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    texts = list(dict.fromkeys(t for p in sts_b("test") for t in (p.a, p.b)))[: args.n]
    models = {
        args.base: Embedder(args.base, compute="fp32", backend="torch"),
        "static": Embedder(args.static),
    }
    for model in models.values():
        model.embed(texts[:50])  # warm-up
    best: dict[str, float] = {}
    for r in range(args.rounds):
        order = list(models.items())
        for name, model in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            model.embed(texts)
            best[name] = max(best.get(name, 0.0), len(texts) / (time.perf_counter() - start))
    for name, rate in best.items():
        print(f"{name:24} {rate:9.1f} texts/s")
    print(f"static / {args.base}: {best['static'] / best[args.base]:.0f}x")


if __name__ == "__main__":
    main()
