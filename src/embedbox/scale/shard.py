"""Embed one shard: read its rows, set bad rows aside, embed the rest, write its files.

Runs inside a worker (a pool process or a Ray actor) with that worker's own `Embedder`. The
part file is written under a temporary name and renamed, so a shard is never half there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from embedbox.embed import Embedder
from embedbox.scale.manifest import ERRORS_DIR, write_atomic
from embedbox.scale.reader import Shard, read_shard
from embedbox.scale.spec import JobSpec

RESERVED = ("id", "vector")


def make_embedder(spec: JobSpec, threads: int | None, device: str | None = None) -> Embedder:
    """The worker's model, with its own thread budget."""
    return Embedder(
        spec.model,
        compute=spec.compute,
        threads=threads,
        max_batch_size=spec.batch_size,
        device=device,
    )


def process(shard: Shard, spec: JobSpec, emb: Embedder) -> dict[str, Any]:
    """Embed `shard` into `<output>/<shard>.parquet` -> a JSON-able summary of what happened.

    Under `spec.strict` the first bad row is returned as `failure` and nothing is written.
    """
    began = time.perf_counter()
    data = read_shard(shard)
    texts = data.values(spec.text_column)
    ids = data.values(spec.id_column) if spec.id_column else None
    errors: list[dict[str, Any]] = [
        {"file": shard.key, "row": row, "id": None, "error": msg} for row, msg in data.broken
    ]
    keep_rows, good_ids, good_texts = [], [], []
    for i, row in enumerate(data.rows):
        doc_id = f"{shard.key}:{row}" if ids is None else _as_id(ids[i])
        problem = _problem(texts[i], spec.text_column) or (
            None if doc_id else f"missing id in column {spec.id_column!r}"
        )
        if problem:
            errors.append({"file": shard.key, "row": row, "id": doc_id, "error": problem})
            continue
        keep_rows.append(i)
        good_ids.append(doc_id)
        good_texts.append(texts[i])
    errors.sort(key=lambda e: e["row"])
    if errors and spec.strict:
        e = errors[0]
        return {
            "name": shard.name,
            "failure": f"{e['file']} row {e['row']} (id {e['id']!r}): {e['error']}; fix the row, "
            "or drop --strict to skip bad rows into errors.jsonl",
        }
    result = emb.encode(
        good_texts, precision=spec.precision, dimensions=spec.dimensions, truncate=False
    )
    columns: dict[str, Any] = {"id": pa.array(good_ids, pa.string())}
    columns["vector"] = _vectors(result.vectors, width=_width(emb, spec))
    picked = data.take(keep_rows)
    for name in _keep(spec, picked.column_names):
        present = name in picked.column_names
        columns[name] = picked.column(name) if present else pa.nulls(len(good_ids))
    if spec.keep is None and spec.text_column not in columns:  # no row could be read at all
        columns[spec.text_column] = pa.array([], pa.string())
    out = Path(spec.output)
    _write_part(pa.table(columns), out / f"{shard.name}.parquet")
    _write_errors(errors, out / ERRORS_DIR / f"{shard.name}.jsonl")
    return {
        "name": shard.name,
        "file": shard.key,
        "start": shard.start,
        "stop": shard.stop,
        "rows": len(good_ids),
        "errors": len(errors),
        "tokens": result.total_tokens,
        "truncated": len(result.truncated),
        "seconds": round(time.perf_counter() - began, 4),
        "model": {
            "name": emb.name,
            "dim": int(spec.dimensions or emb.dim),
            "compute": str(emb.dtype).removeprefix("torch."),
            "precision": spec.precision,
            "normalize": emb.info.normalize,
        },
    }


def _as_id(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def _problem(text: Any, column: str) -> str | None:
    if text is None:
        return f"missing text in column {column!r}"
    if not isinstance(text, str):
        return f"text in column {column!r} is {type(text).__name__}, not a string"
    if not text.strip():
        return f"empty text in column {column!r}"
    return None


def _width(emb: Embedder, spec: JobSpec) -> int:
    dim = spec.dimensions or emb.dim
    return (dim + 7) // 8 if spec.precision in ("binary", "ubinary") else dim


def _vectors(vectors: np.ndarray, width: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(vectors).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _keep(spec: JobSpec, names: list[str]) -> list[str]:
    """Pass-through columns: `spec.keep`, or all but the id column and reserved names."""
    if spec.keep is None:
        return [c for c in names if c != spec.id_column and c not in RESERVED]
    return list(spec.keep)


def _write_part(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_errors(errors: list[dict[str, Any]], path: Path) -> None:
    if not errors:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors).encode())
