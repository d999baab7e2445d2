"""Readers and writers for the file formats embedbox takes and produces.

Readers stream records (dicts) so large files are never loaded whole: txt (one text per line),
jsonl, csv and parquet. Writers take vectors plus optional ids/texts: .npy, .jsonl, .parquet.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedbox.errors import InputError, NotFound

if TYPE_CHECKING:
    import numpy as np

READ_FORMATS = ("txt", "jsonl", "csv", "parquet")
WRITE_FORMATS = ("npy", "jsonl", "parquet")


def detect_format(path: Path, allowed: Sequence[str] = READ_FORMATS) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"json": "jsonl", "ndjson": "jsonl", "tsv": "csv", "text": "txt", "md": "txt"}.get(
        suffix, suffix
    )
    if fmt not in allowed:
        raise InputError(
            f"{path}: unsupported file type '.{suffix}'; use one of {', '.join(allowed)}"
        )
    return fmt


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream records from a file; a txt line becomes {"text": line}. Blank txt lines are skipped."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such file: {p}")
    fmt = detect_format(p)
    if fmt == "txt":
        with p.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    yield {"text": line.rstrip("\n")}
    elif fmt == "jsonl":
        with p.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{p}:{n}: invalid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise InputError(f"{p}:{n}: each line must be a JSON object")
                yield record
    elif fmt == "csv":
        with p.open(encoding="utf-8", newline="") as fh:
            delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
            yield from csv.DictReader(fh, delimiter=delimiter)
    else:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(p)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InputError(f"{p}: not a readable parquet file ({exc})") from exc
        for batch in parquet.iter_batches(batch_size=4096):
            yield from batch.to_pylist()


def read_texts(path: str | Path, field: str = "text") -> list[str]:
    """All texts of a file: the `field` of each record (txt files: each non-blank line)."""
    texts = []
    for n, record in enumerate(read_records(path)):
        if field not in record:
            fields = ", ".join(map(str, record)) or "none"
            raise InputError(
                f"{path}: record {n} has no field {field!r} (fields: {fields}); use --field"
            )
        texts.append(record[field])
    return texts


def read_stdin_lines() -> list[str]:
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def write_vectors(
    path: str | Path,
    vectors: np.ndarray,
    texts: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> None:
    """Write vectors to .npy, .jsonl ({"id", "text", "embedding"} per line) or .parquet."""
    import numpy as np

    p = Path(path)
    fmt = detect_format(p, WRITE_FORMATS)
    tmp = p.with_name(p.name + ".tmp")
    if fmt == "npy":
        with tmp.open("wb") as fh:
            np.save(fh, vectors)
    elif fmt == "jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            for i, vec in enumerate(vectors):
                row: dict[str, Any] = {"id": ids[i] if ids else str(i)}
                if texts is not None:
                    row["text"] = texts[i]
                row["embedding"] = vec.tolist()
                fh.write(json.dumps(row) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        flat = pa.array(np.ascontiguousarray(vectors).reshape(-1))
        columns: dict[str, Any] = {"id": ids or [str(i) for i in range(len(vectors))]}
        if texts is not None:
            columns["text"] = list(texts)
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        pq.write_table(pa.table(columns), tmp)
    tmp.replace(p)  # never leave a half-written output under the real name
