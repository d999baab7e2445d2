"""Readers and writers for the file formats embedbox takes and produces.

Readers stream records (dicts) so large files are never loaded whole: txt (one text per line),
jsonl, csv/tsv and parquet. Each record comes with its place in the file: the 1-based line
where it starts (txt, jsonl, csv) or its 1-based row (parquet), so every message about a
file's content names the file and line (`docs.jsonl:7`, `data.parquet row 7`).

Text files are read as UTF-8: a file that looks binary (a NUL byte in its first 8000 bytes,
the test git uses) is refused; invalid bytes are replaced by U+FFFD with one warning per file
naming the first line that had them. CSV columns can be typed (`infer_types`): a column whose
every non-empty value is an integer becomes int, else float, else true/false bool, else text;
empty values then leave the key out. Writers take vectors plus optional ids/texts: .npy,
.jsonl, .parquet.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import warnings
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedbox.errors import EmbedboxWarning, InputError, NotFound
from embedbox.inputs import check_unicode

if TYPE_CHECKING:
    import numpy as np

READ_FORMATS = ("txt", "jsonl", "csv", "parquet")
WRITE_FORMATS = ("npy", "jsonl", "parquet", "csv")  # csv: .csv or .tsv
BINARY_PROBE = 8000  # bytes searched for a NUL byte, as git does

_INT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")  # no leading zeros: "007" and zip codes stay text
_FLOAT = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLS = {"true": True, "false": False}
_INT_LIMIT = 2**63  # SQLite's integers; longer digit strings (card numbers, ids) stay text


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


def place(path: str | Path, n: int, fmt: str | None = None) -> str:
    """How messages name record `n` of a file: `file:line`, or `file row n` for parquet."""
    fmt = fmt or detect_format(Path(path))
    return f"{path} row {n}" if fmt == "parquet" else f"{path}:{n}"


# ---- text files ---------------------------------------------------------------------------
def check_text_file(path: Path) -> None:
    """Raise `InputError` when `path` looks binary (a NUL byte near its start)."""
    with path.open("rb") as fh:
        head = fh.read(BINARY_PROBE)
    at = head.find(b"\0")
    if at != -1:
        raise InputError(
            f"{path}: looks like a binary file (a NUL byte at offset {at}), not UTF-8 text; "
            "give a text file (UTF-16 text: convert it to UTF-8 first)"
        )


def read_text(path: str | Path) -> str:
    """A whole UTF-8 text file (see the module docstring for binary files and invalid bytes)."""
    p = Path(path)
    check_text_file(p)
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _warn_replaced(p, data.count(b"\n", 0, exc.start) + 1)
        text = data.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def text_lines(path: Path, warn: bool = True) -> Iterator[str]:
    """The lines of a UTF-8 text file, line endings kept, a leading BOM dropped."""
    check_text_file(path)
    warned = not warn
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                if not warned:
                    _warn_replaced(path, n)
                    warned = True
            yield line.removeprefix("\ufeff") if n == 1 else line


def _warn_replaced(path: Path, line: int) -> None:
    warnings.warn(
        f"{path}:{line}: bytes that are not valid UTF-8 were replaced by U+FFFD "
        "(the first such line of the file)",
        EmbedboxWarning,
        stacklevel=3,
    )


# ---- records ------------------------------------------------------------------------------
def read_records(path: str | Path, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Stream the records of a file (see `iter_records`), without their places."""
    for _, record in iter_records(path, **kwargs):
        yield record


def iter_records(
    path: str | Path, *, infer_types: bool = False, raw_fields: Collection[str | None] = ()
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream (line or row, record) from a file; a txt line becomes {"text": line}.

    Blank lines are skipped (txt, jsonl, csv). `infer_types` types CSV columns (not those in
    `raw_fields`, e.g. the text and id fields, which stay exactly as written).
    """
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such file: {p}")
    fmt = detect_format(p)
    if fmt == "txt":
        for n, line in enumerate(text_lines(p), 1):
            if line.strip():
                yield n, {"text": line.rstrip("\r\n")}
    elif fmt == "jsonl":
        for n, line in enumerate(text_lines(p), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}:{n}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{p}:{n}: each line must be a JSON object")
            yield n, record
    elif fmt == "csv":
        yield from _csv_records(p, infer_types, raw_fields)
    else:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(p)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise InputError(f"{p}: not a readable parquet file ({exc})") from exc
        row = 0
        for batch in parquet.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                row += 1
                yield row, record


def csv_columns(path: str | Path) -> list[str]:
    """The header of a CSV/TSV file (empty for an empty file)."""
    first = next(_csv_rows(Path(path), warn=False), None)
    return first[1] if first else []


def _csv_rows(path: Path, warn: bool = True) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, values) for each non-blank row."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(text_lines(path, warn), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if row:
                yield line, row
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from exc


def _csv_records(
    path: Path, infer_types: bool, raw_fields: Collection[str | None]
) -> Iterator[tuple[int, dict[str, Any]]]:
    rows = _csv_rows(path)
    first = next(rows, None)
    if first is None:
        return
    header_line, header = first
    width = len(header)
    kinds: list[str] = ["str"] * width
    if infer_types:
        raw = {i for i, name in enumerate(header) if name in raw_fields}
        kinds = _column_kinds(path, width, raw)
    for line, row in rows:
        if len(row) > width:
            raise InputError(
                f"{path}:{line}: {len(row)} values, but the header (line {header_line}) "
                f"names {width} columns; quote values that hold the delimiter"
            )
        row += [""] * (width - len(row))
        if not infer_types:
            yield line, dict(zip(header, row, strict=True))
            continue
        record: dict[str, Any] = {}
        for name, value, kind in zip(header, row, kinds, strict=True):
            if kind == "raw":
                record[name] = value
            elif value.strip():
                record[name] = _convert(value, kind)
        yield line, record


def _column_kinds(path: Path, width: int, raw: set[int]) -> list[str]:
    """First pass over a CSV: the type of each column (int, float, bool, str; raw: untouched)."""
    possible = [set() if i in raw else {"int", "float", "bool"} for i in range(width)]
    seen = [False] * width
    rows = _csv_rows(path, warn=False)
    next(rows, None)  # the header
    for _, row in rows:
        for i, value in enumerate(row[:width]):
            value = value.strip()
            if not value or not possible[i]:
                continue
            seen[i] = True
            possible[i] &= _kinds_of(value)
        if not any(possible):
            break  # every column is text: no need to read on
    kinds = []
    for i in range(width):
        if i in raw:
            kinds.append("raw")
        elif not seen[i]:
            kinds.append("str")
        else:
            kinds.append(next((k for k in ("int", "float", "bool") if k in possible[i]), "str"))
    return kinds


def _kinds_of(value: str) -> set[str]:
    """The types a (stripped, non-empty) value could have."""
    if value.lower() in _BOOLS:
        return {"bool"}
    if _INT.fullmatch(value):
        return {"int", "float"} if abs(int(value)) < _INT_LIMIT else set()
    if _FLOAT.fullmatch(value) and math.isfinite(float(value)):
        return {"float"}
    return set()


def _convert(value: str, kind: str) -> Any:
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return _BOOLS[value.strip().lower()]
    return value


def scalar(value: str) -> Any:
    """One text value typed on its own (markdown front matter): int, float, true/false, or the
    text; quotes keep a value text ("2001" stays a string)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    kinds = _kinds_of(value) if value else set()
    for kind in ("int", "float", "bool"):
        if kind in kinds:
            return _convert(value, kind)
    return value


# ---- texts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextFile:
    """The texts of a file, with each text's record and place (`file:line`) and, when the
    records have them, ids."""

    texts: list[str]
    ids: list[str] | None
    places: list[str]
    records: list[dict[str, Any]]


def read_texts(path: str | Path, text_field: str = "text", id_field: str | None = None) -> TextFile:
    """Every text of a file: the `text_field` of each record (txt files: each non-blank line).

    Ids come from `id_field`; without one, from an `id` field when the first record has one
    (then every record needs it), else there are none. A record without a text, with an empty
    one, or a file with no texts at all is an `InputError` naming the file and line.
    """
    p = Path(path)
    fmt = detect_format(p)
    texts: list[str] = []
    ids: list[str] = []
    places: list[str] = []
    records: list[dict[str, Any]] = []
    use_id = id_field
    for n, record in iter_records(p):
        where = place(p, n, fmt)
        if not records and use_id is None and "id" in record:
            use_id = "id"
        text = record.get(text_field)
        if not isinstance(text, str):
            fields = ", ".join(map(str, record)) or "none"
            kind = "null" if text is None else type(text).__name__
            what = "no field" if text_field not in record else f"{kind}, not text, in field"
            raise InputError(
                f"{where}: {what} {text_field!r} (fields: {fields}); "
                "choose the text field with --text-field"
            )
        if not text.strip():
            raise InputError(f"{where}: the text is empty; remove the record or fill it in")
        check_unicode(text, where)
        if use_id is not None:
            value = record.get(use_id)
            if value is None or str(value).strip() == "":
                if id_field is not None:
                    raise InputError(f"{where}: no value in id field {use_id!r}")
                raise InputError(
                    f"{where}: no 'id', though the first record has one; give every record "
                    "an id, or name the id field with --id-field"
                )
            ids.append(str(value))
        texts.append(text)
        places.append(where)
        records.append(record)
    if not texts:
        raise InputError(f"{p} holds no texts")
    return TextFile(texts, ids if use_id is not None else None, places, records)


def read_stdin_lines() -> list[tuple[int, str]]:
    """(1-based line, text) of each non-blank line on stdin, read as UTF-8 like a text file:
    binary input is refused, invalid bytes are replaced with one warning."""
    source: Any = getattr(sys.stdin, "buffer", None) or sys.stdin
    out: list[tuple[int, str]] = []
    warned = False
    for n, raw in enumerate(source, 1):
        if isinstance(raw, bytes):
            if b"\0" in raw:
                raise InputError(f"stdin:{n}: a NUL byte: the input looks binary; pipe in text")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                if not warned:
                    _warn_replaced(Path("stdin"), n)
                    warned = True
        else:
            line = raw
        if line.strip():
            out.append((n, line.removeprefix("\ufeff").rstrip("\r\n")))
    return out


def write_vectors(
    path: str | Path,
    vectors: np.ndarray,
    texts: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
) -> None:
    """Write vectors to .npy, .jsonl ({"id", "text", "embedding"} per line), .parquet, or
    .csv / .tsv (id, text, then a column per dimension)."""
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
    elif fmt == "csv":  # id, text, then one column per dimension (e0, e1, ...)
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh, delimiter="\t" if p.suffix.lower() == ".tsv" else ",")
            dims = [f"e{j}" for j in range(vectors.shape[1])]
            out.writerow(["id", *(["text"] if texts is not None else []), *dims])
            for i, vec in enumerate(vectors):
                head = [ids[i] if ids else str(i), *([texts[i]] if texts is not None else [])]
                out.writerow([*head, *vec.tolist()])
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
