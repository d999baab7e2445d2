"""Ingest benchmark: items/s end to end (read files, chunk, embed, store in SQLite) versus
embedding the same texts alone, in the same process, alternating runs. Then the ingest once more
with the model replaced by a lookup of the vectors it gave: the time of everything but the model
(reading, chunking, hashing, storing), measured directly rather than as a difference.

    python benchmarks/ingest.py                # 300 Lee news articles (gensim test data)
    python benchmarks/ingest.py --corpus sts --docs 3000   # short STS-B sentences
    python benchmarks/ingest.py --docs 100 --repeat 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from embedbox import Embedder
from embedbox.datasets import lee_background, sts_b
from embedbox.store.collection import Collection
from embedbox.store.ingest import IngestOptions, ingest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", choices=("lee", "sts"), default="lee")
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    if args.corpus == "lee":
        docs = lee_background()
    else:  # distinct sentences: short items, where storage weighs most against the model
        docs = list(dict.fromkeys(t for p in sts_b("train") for t in (p.a, p.b)))
    docs = docs[: args.docs]
    emb = Embedder()
    emb.embed(["warm up the model"])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "docs.jsonl"
        data.write_text(
            "\n".join(json.dumps({"id": f"doc-{i}", "text": d}) for i, d in enumerate(docs))
        )
        embed_s, ingest_s = [], []
        lookup: dict[str, np.ndarray] = {}
        for r in range(args.repeat):
            # The collection chunks long articles; embed exactly those chunks for the reference.
            col = Collection.open(Path(tmp) / f"c{r}", create=True, embedder=emb)
            t = time.perf_counter()
            report = ingest(col, [data], IngestOptions(id_field="id", batch_size=args.batch))
            ingest_s.append(time.perf_counter() - t)
            pieces = [
                docs[int(doc_id[4:])][s:e]
                for doc_id, s, e in col.conn.execute(
                    "SELECT d.id, c.start, c.end FROM chunks c JOIN documents d ON d.rid = c.doc"
                )
            ]
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for start in range(0, len(pieces), args.batch):
                    part = pieces[start : start + args.batch]
                    vectors = emb.embed(part, input_type="document", truncate=False)
                    lookup.update(zip(part, vectors, strict=True))
            embed_s.append(time.perf_counter() - t)
            col.close()
            again = Collection.open(Path(tmp) / f"c{r}", embedder=emb)
            t = time.perf_counter()
            rerun = ingest(again, [data], IngestOptions(id_field="id", batch_size=args.batch))
            rerun_s = time.perf_counter() - t
            print(
                f"run {r}: {report.added} docs ({len(pieces)} chunks): ingest {ingest_s[-1]:.1f}s, "
                f"embedding alone {embed_s[-1]:.1f}s; re-run (all unchanged: "
                f"{rerun.unchanged}) {rerun_s:.2f}s"
            )
        model = emb.embed
        emb.embed = lambda texts, **_: np.stack([lookup[t] for t in texts])  # type: ignore[method-assign]
        col = Collection.open(Path(tmp) / "replay", create=True, embedder=emb)
        t = time.perf_counter()
        ingest(col, [data], IngestOptions(id_field="id", batch_size=args.batch))
        rest_s = time.perf_counter() - t
        col.close()
        emb.embed = model  # type: ignore[method-assign]
    best_ingest, best_embed = float(np.min(ingest_s)), float(np.min(embed_s))
    overhead = (best_ingest - best_embed) / best_ingest
    print(
        f"\nend to end: {len(docs) / best_ingest:.1f} docs/s; embedding alone "
        f"{len(docs) / best_embed:.1f} docs/s; storage + reading + chunking overhead "
        f"{100 * overhead:.1f}% of ingest time (target < 15%)"
    )
    print(
        f"ingest with the model replaced by a lookup of its vectors: {rest_s:.2f}s = "
        f"{100 * rest_s / best_ingest:.1f}% of end-to-end ingest time"
    )


if __name__ == "__main__":
    main()
