"""Ingest benchmark: items/s end to end (read files, chunk, embed, store in SQLite) versus
embedding the same texts alone, in the same process, alternating runs.

    python benchmarks/ingest.py                # 300 Lee news articles (gensim test data)
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
from embedbox.collection import Collection
from embedbox.datasets import lee_background
from embedbox.ingest import IngestOptions, ingest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    docs = lee_background()[: args.docs]
    emb = Embedder()
    emb.embed(["warm up the model"])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "lee.jsonl"
        data.write_text(
            "\n".join(json.dumps({"id": f"lee-{i}", "text": d}) for i, d in enumerate(docs))
        )
        embed_s, ingest_s = [], []
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
                    emb.embed(
                        pieces[start : start + args.batch], input_type="document", truncate=False
                    )
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
    best_ingest, best_embed = float(np.min(ingest_s)), float(np.min(embed_s))
    overhead = (best_ingest - best_embed) / best_ingest
    print(
        f"\nend to end: {len(docs) / best_ingest:.1f} docs/s; embedding alone "
        f"{len(docs) / best_embed:.1f} docs/s; storage + reading + chunking overhead "
        f"{100 * overhead:.1f}% of ingest time (target < 15%)"
    )


if __name__ == "__main__":
    main()
