"""Shared input files for the scale tests, built from STS-B sentences (shipped data), and
readers of a job's output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedbox import Embedder
from embedbox.datasets import sts_b

BAD = [
    {"doc": "bad-empty", "text": "   ", "score": 1.0},
    {"doc": "bad-type", "text": 42, "score": 2.0},
    {"doc": "bad-missing", "score": 3.0},
]


def sentences(n: int, offset: int = 0) -> list[str]:
    pairs = sts_b("test")
    return [p.a for p in pairs[offset : offset + n]]


def write_jsonl(path: Path, n: int, bad: bool = True) -> list[dict[str, object]]:
    """n good rows (ids d0..), optionally the bad rows and one broken line in between."""
    rows: list[dict[str, object]] = [
        {"doc": f"d{i}", "text": t, "score": float(i % 5)} for i, t in enumerate(sentences(n))
    ]
    lines = [json.dumps(r) for r in rows]
    if bad:
        for k, r in enumerate(BAD):
            lines.insert(5 + 7 * k, json.dumps(r))
        lines.insert(30, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def read_output(folder: Path) -> pa.Table:
    parts = [pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))]
    return pa.concat_tables(parts, promote_options="default")  # files may differ in columns


def vectors(table: pa.Table) -> np.ndarray:
    width = table.schema.field("vector").type.list_size
    flat = table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
    return np.asarray(flat).reshape(-1, width)


def assert_vectors_match(
    table: pa.Table, rows: list[dict[str, object]], embedder: Embedder
) -> None:
    """Each output row's vector equals `embedder.embed` of its input text."""
    text = {str(r["doc"]): str(r["text"]) for r in rows}
    ids = table.column("id").to_pylist()
    np.testing.assert_allclose(vectors(table), embedder.embed([text[i] for i in ids]), atol=2e-5)
