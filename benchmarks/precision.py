"""Accuracy cost of each output precision, measured on STS-B test and a retrieval task.

    .venv/bin/python benchmarks/precision.py

For each precision: bytes per vector, STS-B Spearman (cosine of dequantised vectors; Hamming
similarity for binary) and recall@10 of retrieval against float32 exact search over all
STS-B test sentences used as both queries and corpus.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from scipy.stats import spearmanr

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from embedbox import Embedder
    from embedbox.datasets import sts_b
    from embedbox.quantize import dequantize, hamming_similarity
    from embedbox.similarity import top_k

    warnings.filterwarnings("ignore")
    emb = Embedder(compute="fp32")
    pairs = sts_b("test")
    gold = np.array([p.score for p in pairs])
    corpus = list(dict.fromkeys(t for p in pairs for t in (p.a, p.b)))
    ref = emb.embed(corpus)
    ref_top, _ = top_k(ref[:500] @ ref.T, 11)
    print(f"model {emb.name}; STS-B test {len(pairs)} pairs; retrieval corpus {len(corpus)} texts")
    print(f"{'precision':10s} {'bytes':>6s} {'spearman':>9s} {'recall@10':>10s}")
    for precision in ("float32", "float16", "int8", "uint8", "binary", "ubinary"):
        a = emb.embed([p.a for p in pairs], precision=precision)
        b = emb.embed([p.b for p in pairs], precision=precision)
        docs = emb.embed(corpus, precision=precision)
        cal = emb._calibration(precision)
        if precision in ("binary", "ubinary"):
            sts = np.array(
                [hamming_similarity(x[None], y[None])[0, 0] for x, y in zip(a, b, strict=True)]
            )
            scores = hamming_similarity(docs[:500], docs)
        else:
            da, db, dd = (dequantize(x, precision, cal) for x in (a, b, docs))
            sts = (da * db).sum(1) / (np.linalg.norm(da, axis=1) * np.linalg.norm(db, axis=1))
            dd = dd / np.linalg.norm(dd, axis=1, keepdims=True)
            scores = dd[:500] @ dd.T
        got, _ = top_k(scores, 11)
        recall = np.mean(
            [len(set(g[1:]) & set(r[1:])) / 10 for g, r in zip(got, ref_top, strict=True)]
        )
        rho = spearmanr(sts, gold).statistic
        print(f"{precision:10s} {docs.nbytes // len(docs):6d} {rho:9.4f} {recall:10.3f}")


if __name__ == "__main__":
    main()
