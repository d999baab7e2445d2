"""Throughput of embedbox vs sentence-transformers on the same weights, in one process.

    .venv/bin/python benchmarks/embed_throughput.py [--n 2000] [--rounds 3] [--device cpu|cuda]
        [--compute auto] [--batch-tokens N] [--compile]

Reference: sentence-transformers `encode` with its defaults (batch 32; fp32 on CPU, fp16 on CUDA).
embedbox runs with `compute="auto"` (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32) and
the hardware-picked token budget per forward, unless told otherwise; `--compile` adds
`torch.compile` (its compile time, spent in the warm-up pass, is printed apart).
Rounds alternate between the two so that load on a shared machine hits both alike; the best round
of each is reported, with the ratio and the cosine agreement to the reference vectors.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def corpus(n: int) -> list[str]:
    """Real varied texts: STS-B sentences (short) and Lee news articles (long), shuffled."""
    from embedbox.datasets import lee_background, sts_b

    texts = [t for split in ("test", "dev", "train") for p in sts_b(split) for t in (p.a, p.b)]
    texts = list(dict.fromkeys(texts))
    rng = np.random.default_rng(0)
    long = lee_background()
    chosen = [texts[i] for i in rng.choice(len(texts), size=n - n // 10, replace=False)]
    chosen += [long[i % len(long)] for i in range(n // 10)]
    rng.shuffle(chosen)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compute", default="auto")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from embedbox import Embedder, hardware

    warnings.filterwarnings("ignore")
    texts = corpus(args.n)
    ours = Embedder(
        args.model,
        compute=args.compute,
        device=args.device,
        batch_tokens=args.batch_tokens,
        compile=args.compile,
    )
    tokens = sum(min(c, ours.max_tokens) for c in ours.count_tokens(texts))
    st = SentenceTransformer(str(ours.info.path), device=args.device)
    if args.device == "cuda":
        st = st.half()
    print(f"machine: {hardware.describe()}")
    d = ours.describe()
    print(
        f"model: {ours.name}, embedbox compute {d['compute']}, batch_tokens {d['batch_tokens']}, "
        f"compile {d['compiled']}"
    )
    print(f"corpus: {len(texts)} texts, {tokens} tokens (after truncation to {ours.max_tokens})")

    def run_reference() -> np.ndarray:
        return np.asarray(st.encode(texts, batch_size=32, normalize_embeddings=True))

    def run_ours() -> np.ndarray:
        return ours.embed(texts, truncate=False)

    run_reference()  # warm-up (allocator, kernels, CUDA context; embedbox: compilation too)
    start = time.perf_counter()
    run_ours()
    if args.compile:
        print(f"embedbox warm-up pass (compiles): {time.perf_counter() - start:.1f}s")
    best = {"sentence-transformers": float("inf"), "embedbox": float("inf")}
    ref = mine = np.empty(0)
    for _ in range(args.rounds):
        for name, fn in (("sentence-transformers", run_reference), ("embedbox", run_ours)):
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = fn()
            if args.device == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
            if name == "embedbox":
                mine = out
            else:
                ref = out
    # In float64: the reference is float16 on CUDA, and float16 norms put cosines above 1.
    ref, mine = ref.astype(np.float64), mine.astype(np.float64)
    cos = (ref * mine).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(mine, axis=1))
    print(f"{'engine':24s} {'texts/s':>9s} {'tokens/s':>10s}")
    for name, seconds in best.items():
        print(f"{name:24s} {len(texts) / seconds:9.1f} {tokens / seconds:10.0f}")
    ratio = best["sentence-transformers"] / best["embedbox"]
    print(f"ratio embedbox / sentence-transformers: {ratio:.2f}x")
    print(f"cosine to reference: min {cos.min():.6f}, mean {cos.mean():.6f}")


if __name__ == "__main__":
    main()
