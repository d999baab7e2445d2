"""Ingest files and folders into a collection: resumable, batch-committed, with progress.

Formats: txt (one document per line, or per file), markdown (one document per file; simple
`---` front matter becomes metadata, the first `# heading` the title), jsonl, csv/tsv and
parquet (pick the id / text / metadata / vector fields). CSV columns and front-matter values
are typed (int, float, true/false) unless `infer_types=False`, so range filters compare
numbers. Ids are taken from `id_field` or derived from the file and record number, so re-running
an ingest finds the documents it already stored: unchanged ones are skipped without embedding,
changed ones replaced. Each batch is one transaction; a crash loses at most the batch in flight.
The input is checked (files, the first records' fields, that there is any text) before anything
is written, so a bad input leaves the collection as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedbox.errors import Conflict, InputError, NotFound, StorageError
from embedbox.io import check_text_file, csv_columns, iter_records, place, read_text, scalar
from embedbox.store.collection import Collection
from embedbox.types import Progress

__all__ = [
    "IngestOptions",
    "IngestReport",
    "check_input",
    "find_files",
    "ingest",
    "iter_documents",
    "parse_markdown",
]

SUFFIXES = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "markdown",
    ".markdown": "markdown",
    ".jsonl": "records",
    ".json": "records",
    ".ndjson": "records",
    ".csv": "records",
    ".tsv": "records",
    ".parquet": "records",
}
Unit = Literal["auto", "line", "file"]


@dataclass(frozen=True)
class IngestOptions:
    """Which fields hold what, and how to split files.

    `metadata_fields`: None keeps every other scalar field of a record; () keeps none.
    `text_unit` for .txt files: "line" (one document per line), "file" (one per file) or
    "auto" (lines for a file named directly, whole files for files found in a folder).
    Every document also gets `source` (its file) in its metadata. `infer_types`: CSV/TSV
    columns whose every value is a number (or true/false) and front-matter values that are
    become numbers (bools); empty CSV values leave the key out. False keeps every value as text.
    """

    id_field: str | None = None
    text_field: str = "text"
    metadata_fields: tuple[str, ...] | None = None
    vector_field: str | None = None
    text_unit: Unit = "auto"
    batch_size: int = 64
    infer_types: bool = True


@dataclass
class IngestReport:
    files: int = 0
    documents: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_empty: int = 0
    batches: int = 0
    seconds: float = 0.0
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "sources"}


@dataclass
class Doc:
    id: str
    text: str
    metadata: dict[str, Any]
    vector: list[float] | None = None


def find_files(paths: Sequence[str | Path]) -> list[tuple[Path, str, bool]]:
    """-> (file, name relative to what was given, given directly?) for every supported file."""
    out: list[tuple[Path, str, bool]] = []
    for given in paths:
        p = Path(given).expanduser()
        if p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise InputError(f"{p}: unsupported file type; use one of {_known()}")
            out.append((p, p.name, True))
        elif p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                raise InputError(f"{p}: no supported files ({_known()}) in this folder")
            out.extend((f, f.relative_to(p).as_posix(), False) for f in found)
        else:
            raise NotFound(f"no such file or folder: {p}")
    return out


def iter_documents(path: Path, name: str, direct: bool, opts: IngestOptions) -> Iterator[Doc]:
    """Documents of one file, with deterministic ids."""
    if _is_whole(path, direct, opts):
        kind = SUFFIXES[path.suffix.lower()]
        text = read_text(path)
        meta: dict[str, Any] = {}
        if kind == "markdown":
            text, meta = parse_markdown(text, opts.infer_types)
        yield Doc(name, text, {**meta, "source": name})
        return
    if SUFFIXES[path.suffix.lower()] == "txt":
        for n, (line, record) in enumerate(iter_records(path), 1):
            yield Doc(f"{name}:{n}", record["text"], {"source": name, "line": line})
        return
    # An empty CSV value leaves its key out; the column is there all the same.
    columns = set(csv_columns(path)) if path.suffix.lower() in (".csv", ".tsv") else set()
    raw = (opts.text_field, opts.id_field, opts.vector_field)
    records = iter_records(path, infer_types=opts.infer_types, raw_fields=raw)
    for n, (at, record) in enumerate(records, 1):
        yield _record_doc(record, name, n, place(path, at), opts, columns)


def _record_doc(
    record: dict[str, Any],
    name: str,
    n: int,
    where: str,
    opts: IngestOptions,
    columns: set[str],
) -> Doc:
    if opts.text_field not in record and opts.vector_field is None:
        fields = ", ".join(map(str, record)) or "none"
        raise InputError(
            f"{where}: no field {opts.text_field!r} (fields: {fields}); "
            "choose one with --text-field"
        )
    text = record.get(opts.text_field)
    text = "" if text is None else str(text)
    if opts.id_field is not None:
        if record.get(opts.id_field) in (None, ""):
            raise InputError(f"{where}: no value in id field {opts.id_field!r}")
        doc_id = str(record[opts.id_field])
    else:
        doc_id = f"{name}:{n}"
    vector = None
    if opts.vector_field is not None:
        vector = record.get(opts.vector_field)
        if not isinstance(vector, list | tuple | np.ndarray) or len(vector) == 0:
            raise InputError(f"{where}: field {opts.vector_field!r} must hold a list of numbers")
    used = {opts.id_field, opts.text_field, opts.vector_field}
    keep = opts.metadata_fields
    meta: dict[str, Any] = {"source": name}
    for key, value in record.items():
        if key in used or (keep is not None and key not in keep):
            continue
        if (
            value is None
            or isinstance(value, str | int | float | bool)
            or (isinstance(value, list | dict) and keep is not None)
        ):
            meta[key] = value
    if keep is not None:
        missing = [k for k in keep if k not in record and k not in columns]
        if missing:
            raise InputError(f"{where}: no metadata field(s) {', '.join(map(repr, missing))}")
    return Doc(doc_id, text, meta, None if vector is None else list(vector))


def parse_markdown(text: str, infer_types: bool = True) -> tuple[str, dict[str, Any]]:
    """Strip simple `key: value` front matter into metadata; the first `# ` heading is `title`.

    `infer_types`: values that read as numbers or true/false become them (a quoted "2001"
    stays text); empty values are left out. False keeps every value as text."""
    meta: dict[str, Any] = {}
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            for line in text[4:end].splitlines():
                key, sep, value = line.partition(":")
                if not sep or not key.strip() or line.startswith((" ", "\t", "-")):
                    continue
                value = value.strip()
                if not infer_types:
                    meta[key.strip()] = value.strip("'\"")
                elif value not in ("", "~", "null"):
                    meta[key.strip()] = scalar(value)
            text = text[end + 4 :].lstrip("\n")
    for line in text.splitlines():
        if line.startswith("# "):
            meta.setdefault("title", line[2:].strip())
            break
    return text, meta


def check_input(paths: Sequence[str | Path], options: IngestOptions | None = None) -> None:
    """Check an input before anything is written: the files exist and are text, the first
    record of each has the fields asked for, and there is some text (or vector) to add.

    Raises `InputError` / `NotFound`; reads each file only up to its first record (and on to
    the first document with text, until one is found)."""
    opts = options or IngestOptions()
    if opts.batch_size < 1:
        raise InputError("batch_size must be at least 1")
    _whole_file(opts.text_unit, True)
    quick = replace(opts, infer_types=False)  # typing CSV columns would read whole files
    found = False
    for path, name, direct in find_files(paths):
        if found and _is_whole(path, direct, opts):
            check_text_file(path)  # a whole-file document has no fields to check
            continue
        for doc in iter_documents(path, name, direct, quick):
            found = found or bool(doc.text.strip()) or doc.vector is not None
            if found:
                break  # this file's first record is checked and there is text to add
    if not found:
        given = ", ".join(map(str, paths))
        raise InputError(f"no text to add: {given} holds no document with text")


def ingest(
    col: Collection,
    paths: Sequence[str | Path],
    options: IngestOptions | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Add or update every document found under `paths`; safe to re-run (resumes).

    The input is checked first (`check_input`), so an input without text, or whose first
    records lack a field asked for, is an `InputError` before anything is written."""
    opts = options or IngestOptions()
    check_input(paths, opts)
    files = find_files(paths)
    report = IngestReport(files=len(files), sources=[str(f) for f, _, _ in files])
    total = sum(_count(f, direct, opts) for f, _, direct in files)
    start = time.perf_counter()
    seen: dict[str, str] = {}
    batch: list[Doc] = []
    done = 0
    for path, name, direct in files:
        for doc in iter_documents(path, name, direct, opts):
            if doc.id in seen:
                raise Conflict(
                    f"id {doc.id!r} appears twice ({seen[doc.id]} and {name}); "
                    "ids must be unique; check --id-field"
                )
            seen[doc.id] = name
            if not doc.text.strip() and doc.vector is None:
                report.skipped_empty += 1
                continue
            batch.append(doc)
            if len(batch) >= opts.batch_size:
                done += _flush_or_say(col, batch, report)
                if progress is not None:
                    progress(done + report.skipped_empty, total)
    done += _flush_or_say(col, batch, report)
    if progress is not None:
        progress(done + report.skipped_empty, total)
    report.seconds = time.perf_counter() - start
    return report


def _flush_or_say(col: Collection, batch: list[Doc], report: IngestReport) -> int:
    """`_flush`; a storage failure says how much of this run is safely stored."""
    try:
        return _flush(col, batch, report)
    except StorageError as exc:
        raise StorageError(
            f"{exc} ({report.documents} documents of this run were committed before it; "
            "running it again resumes)",
            exc.reason,
        ) from exc


def _flush(col: Collection, batch: list[Doc], report: IngestReport) -> int:
    if not batch:
        return 0
    vectors = None
    if batch[0].vector is not None:
        try:
            vectors = np.asarray([d.vector for d in batch], dtype=np.float32)
        except ValueError as exc:
            raise InputError(
                f"vectors in the batch starting at {batch[0].id!r} differ in length"
            ) from exc
    stats = col.upsert_stats(
        [d.text for d in batch],
        ids=[d.id for d in batch],
        metadatas=[d.metadata for d in batch],
        vectors=vectors,
    )
    report.added += stats.added
    report.updated += stats.updated
    report.unchanged += stats.unchanged
    report.documents += len(batch)
    report.batches += 1
    n = len(batch)
    batch.clear()
    return n


def _count(path: Path, direct: bool, opts: IngestOptions) -> int:
    """Cheap record count for the progress bar."""
    if _is_whole(path, direct, opts):
        return 1
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return 0
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return max(lines - 1, 0) if path.suffix.lower() in (".csv", ".tsv") else lines


def _is_whole(path: Path, direct: bool, opts: IngestOptions) -> bool:
    """Is this file one document (markdown; txt found in a folder or with text_unit="file")?"""
    kind = SUFFIXES[path.suffix.lower()]
    return kind == "markdown" or (kind == "txt" and _whole_file(opts.text_unit, direct))


def _whole_file(unit: Unit, direct: bool) -> bool:
    if unit not in ("auto", "line", "file"):
        raise InputError(f"text_unit must be auto, line or file, not {unit!r}")
    return unit == "file" or (unit == "auto" and not direct)


def _known() -> str:
    return ", ".join(sorted(SUFFIXES))
