"""Find input files, cut them into shards of rows, and read one shard as an Arrow table.

Files are streamed: planning counts rows (and, for line formats, notes the byte offset where
each shard starts), and reading a shard touches only that shard's rows (Parquet: only the row
groups it overlaps). Nothing reads a whole file into memory.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from embedbox.errors import InputError, NotFound
from embedbox.io import READ_FORMATS, check_text_file, detect_format

SUFFIXES = {".txt", ".text", ".md", ".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".parquet"}


@dataclass(frozen=True)
class InputFile:
    path: str
    key: str  # name used in default ids: relative to the input argument
    fmt: str
    rows: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Shard:
    """Rows [start, stop) of one file; `offset` is where row `start` begins (line formats)."""

    name: str
    path: str
    key: str
    fmt: str
    start: int
    stop: int
    offset: int = -1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ShardRows:
    """A shard as read: its parseable rows (numbers and values) and its unparseable rows.

    Line formats keep the parsed records, so checks see the values before any conversion to
    Arrow, and only the rows kept are converted (a column of mixed types becomes JSON text).
    """

    rows: list[int]
    broken: list[tuple[int, str]]
    records: list[dict[str, Any]] | None = None
    table: pa.Table | None = None

    def values(self, name: str) -> list[Any]:
        """The column's values, None where a row lacks it."""
        if self.records is not None:
            return [r.get(name) for r in self.records]
        if self.table is None or name not in self.table.column_names:
            return [None] * len(self.rows)
        return list(self.table.column(name).to_pylist())

    def take(self, indices: list[int]) -> pa.Table:
        """The rows at `indices` as an Arrow table, with every column of the shard's records
        (so a shard whose rows were all set aside keeps its columns)."""
        if self.table is None:
            records = self.records or []
            names = list(dict.fromkeys(k for r in records for k in r))
            return _table([records[i] for i in indices], names)
        return self.table.take(pa.array(indices, pa.int64()))


def discover(inputs: tuple[str, ...]) -> list[tuple[Path, str]]:
    """Files named or inside folders (recursively, sorted) -> (path, key) pairs."""
    found: list[tuple[Path, str]] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not files:
                raise InputError(f"{p}: folder has no {', '.join(READ_FORMATS)} files")
            found.extend((f, f.relative_to(p).as_posix()) for f in files)
        elif p.is_file():
            detect_format(p)  # a clear error for an unsupported type
            found.append((p, p.name))
        else:
            raise NotFound(f"no such file or folder: {p}")
    keys: dict[str, Path] = {}
    for path, key in found:
        if key in keys and keys[key].resolve() != path.resolve():
            raise InputError(
                f"two inputs are both named {key!r} ({keys[key]} and {path}); default ids would "
                "clash: pass --id-field or rename one"
            )
        keys[key] = path
    return found


def plan(
    inputs: tuple[str, ...], shard_rows: int, text_column: str
) -> list[tuple[InputFile, list[Shard]]]:
    """Every input file with its shards, checked for the text column up front."""
    out = []
    for index, (path, key) in enumerate(discover(inputs)):
        fmt = detect_format(path)
        if fmt != "parquet":
            check_text_file(path)
        stat = path.stat()
        rows, offsets = _count(path, fmt, shard_rows)
        _check_column(path, fmt, text_column)
        info = InputFile(str(path.resolve()), key, fmt, rows, stat.st_size, stat.st_mtime_ns)
        shards = [
            Shard(
                f"part-{index:05d}-{n:06d}",
                info.path,
                key,
                fmt,
                start,
                min(start + shard_rows, rows),
                offsets[n] if offsets else -1,
            )
            for n, start in enumerate(range(0, rows, shard_rows))
        ]
        out.append((info, shards))
    return out


def read_shard(shard: Shard) -> ShardRows:
    """The rows of one shard; lines that are not JSON objects are returned as `broken`."""
    if shard.fmt == "parquet":
        return _read_parquet(shard)
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    broken: list[tuple[int, str]] = []
    for row, item in zip(range(shard.start, shard.stop), _records(shard), strict=False):
        if isinstance(item, dict):
            records.append(item)
            rows.append(row)
        else:
            broken.append((row, item))
    return ShardRows(rows, broken, records=records)


# ---- planning helpers --------------------------------------------------------------------
def _count(path: Path, fmt: str, shard_rows: int) -> tuple[int, list[int]]:
    if fmt == "parquet":
        return _parquet(path).metadata.num_rows, []
    if fmt == "csv":
        with path.open(encoding="utf-8", newline="") as fh:
            return sum(1 for _ in _csv(fh, path)), []
    rows, offsets, pos = 0, [], 0
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                if rows % shard_rows == 0:
                    offsets.append(pos)
                rows += 1
            pos += len(line)
    return rows, offsets


def _check_column(path: Path, fmt: str, column: str) -> None:
    if fmt == "txt":
        if column != "text":
            raise InputError(f"{path}: text files have one column, 'text'; drop --text-field")
        return
    if fmt == "parquet":
        names = _parquet(path).schema_arrow.names
    else:
        first = next((r for r in _records_from(path, fmt, 0, 0) if isinstance(r, dict)), None)
        if first is None:
            return
        names = list(first)
    if column not in names:
        raise InputError(
            f"{path}: no column {column!r} (columns: {', '.join(map(str, names)) or 'none'}); "
            "pass --text-field NAME"
        )


# ---- reading helpers ---------------------------------------------------------------------
def _parquet(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc


def _read_parquet(shard: Shard) -> ShardRows:
    pf = _parquet(Path(shard.path))
    pieces, first = [], 0
    for group in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(group).num_rows
        lo, hi = max(shard.start, first), min(shard.stop, first + n)
        if lo < hi:
            pieces.append(pf.read_row_group(group).slice(lo - first, hi - lo))
        first += n
        if first >= shard.stop:
            break
    table = pa.concat_tables(pieces) if pieces else pf.schema_arrow.empty_table()
    return ShardRows(list(range(shard.start, shard.stop)), [], table=table)


def _records(shard: Shard) -> Iterator[dict[str, Any] | str]:
    return _records_from(Path(shard.path), shard.fmt, shard.start, shard.offset)


def _records_from(path: Path, fmt: str, start: int, offset: int) -> Iterator[dict[str, Any] | str]:
    """Records from row `start` on; a line that is not a JSON object yields its problem."""
    if fmt == "csv":
        with path.open(encoding="utf-8", newline="") as fh:
            yield from itertools.islice(_csv(fh, path), start, None)
        return
    with path.open("rb") as fh:
        fh.seek(max(offset, 0))
        for raw in fh:
            if not raw.strip():
                continue
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if fmt == "txt":
                yield {"text": line}
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"invalid JSON ({exc.msg})"
                continue
            yield record if isinstance(record, dict) else "line is not a JSON object"


def _csv(fh: Any, path: Path) -> Iterator[dict[str, Any]]:
    return csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")


def _table(records: list[dict[str, Any]], names: list[Any]) -> pa.Table:
    """Records -> table with these columns; a column of mixed types becomes JSON text."""
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            columns[str(name)] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[str(name)] = pa.array([None if v is None else json.dumps(v) for v in values])
    return pa.table(columns)
