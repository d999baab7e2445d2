"""Read evaluation data from the user's files; every problem is an `InputError` naming the file
and line.

- pairs (sts): `.jsonl` with `sentence1`, `sentence2`, `score`; or `.tsv` / `.csv` with those
  columns (a header row naming them, or exactly three columns in that order without one).
- retrieval: a BEIR / MTEB folder: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl`
  (`_id`, `text`), `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`; header optional).
- labelled texts (classification, clustering): `.jsonl`, `.csv` or `.tsv` with a text and a
  label field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedbox.errors import InputError, NotFound

PAIR_FIELDS = ("sentence1", "sentence2", "score")


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    score: float


@dataclass(frozen=True)
class Labelled:
    text: str
    label: str


@dataclass(frozen=True)
class RetrievalData:
    """Corpus and queries by id, and graded judgements: qrels[query id][doc id] = grade."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def _file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such file: {p}")
    return p


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{n}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise InputError(f"{path}:{n}: each line must be a JSON object")
            yield n, record


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, columns) of a tsv or csv file, blank lines skipped."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row


def _records(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Records of a jsonl / csv / tsv file with line numbers. A delimited file without a header
    naming `fields` must have exactly those columns, in that order."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        yield from _jsonl(path)
        return
    if suffix not in (".csv", ".tsv"):
        raise InputError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .csv or .tsv")
    header: list[str] | None = None
    for n, row in _rows(path):
        if header is None:
            header = [c.strip() for c in row]
            if set(fields) <= set(header):
                continue
            header = list(fields)
        if len(row) != len(header):
            raise InputError(
                f"{path}:{n}: {len(row)} columns, expected {len(header)} ({', '.join(header)})"
            )
        yield n, dict(zip(header, row, strict=True))


def _text(path: Path, n: int, record: dict[str, Any], field: str) -> str:
    if field not in record:
        fields = ", ".join(map(str, record)) or "none"
        raise InputError(f"{path}:{n}: no field {field!r} (fields: {fields})")
    value = record[field]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{path}:{n}: field {field!r} must be a non-empty string")
    return value


def read_pairs(path: str | Path) -> list[Pair]:
    """Scored sentence pairs; at least two, and not all scores equal."""
    p = _file(path)
    pairs: list[Pair] = []
    for n, record in _records(p, PAIR_FIELDS):
        a, b = _text(p, n, record, "sentence1"), _text(p, n, record, "sentence2")
        try:
            score = float(record.get("score", ""))
        except (TypeError, ValueError):
            raise InputError(f"{p}:{n}: score {record.get('score')!r} is not a number") from None
        pairs.append(Pair(a, b, score))
    if len(pairs) < 2:
        raise InputError(f"{p}: {len(pairs)} pairs; a correlation needs at least two")
    if len({x.score for x in pairs}) < 2:
        raise InputError(f"{p}: every pair has the same score; nothing to correlate with")
    return pairs


def read_labelled(
    path: str | Path, text_field: str = "text", label_field: str = "label", min_classes: int = 2
) -> list[Labelled]:
    """Labelled texts with at least `min_classes` distinct labels."""
    p = _file(path)
    rows = []
    for n, record in _records(p, (text_field, label_field)):
        text = _text(p, n, record, text_field)
        if label_field not in record or record[label_field] in (None, ""):
            raise InputError(f"{p}:{n}: no label in field {label_field!r}")
        rows.append(Labelled(text, str(record[label_field])))
    check_labels(rows, str(p), min_classes)
    return rows


def check_labels(rows: list[Labelled], where: str, min_classes: int = 2) -> None:
    if not rows:
        raise InputError(f"{where}: no labelled texts")
    labels = sorted({r.label for r in rows})
    if len(labels) < min_classes:
        raise InputError(
            f"{where}: only one label ({labels[0]!r}) in {len(rows)} texts; "
            f"this task needs at least {min_classes} classes"
        )


# ---- retrieval -----------------------------------------------------------------------------
def _ids_and_texts(path: Path, with_title: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, record in _jsonl(path):
        doc_id = record.get("_id", record.get("id"))
        if doc_id is None or str(doc_id) == "":
            raise InputError(f"{path}:{n}: no '_id'")
        doc_id = str(doc_id)
        if doc_id in out:
            raise InputError(f"{path}:{n}: duplicate id {doc_id!r}")
        text = str(record.get("text") or "")
        title = str(record.get("title") or "") if with_title else ""
        full = f"{title} {text}".strip()  # BEIR / MTEB join title and text with one space
        if not full:
            raise InputError(f"{path}:{n}: id {doc_id!r} has no text")
        out[doc_id] = full
    if not out:
        raise InputError(f"{path}: empty")
    return out


def read_qrels(
    path: str | Path, queries: dict[str, str], corpus_ids: set[str] | None, corpus_name: str
) -> dict[str, dict[str, int]]:
    """query id -> {doc id: grade} from a tsv (`query-id corpus-id score`, header optional).
    Ids missing from `queries` or from `corpus_ids` (when given) are errors naming the line."""
    p = _file(path)
    qrels: dict[str, dict[str, int]] = {}
    first = True
    for n, row in _rows_tsv(p):
        cells = [c.strip() for c in row]
        if first and cells[:2] == ["query-id", "corpus-id"]:
            first = False
            continue
        first = False
        if len(cells) == 4:  # TREC style: query-id, iteration, doc-id, grade
            cells = [cells[0], cells[2], cells[3]]
        if len(cells) != 3:
            raise InputError(f"{p}:{n}: {len(cells)} columns, expected query-id, corpus-id, score")
        qid, did, grade = cells
        try:
            value = int(float(grade))
        except ValueError:
            raise InputError(f"{p}:{n}: score {grade!r} is not a number") from None
        if value < 0:
            raise InputError(
                f"{p}:{n}: negative score {value}; grades are 0 (not relevant) or more"
            )
        if qid not in queries:
            raise InputError(f"{p}:{n}: unknown query id {qid!r} (not in the queries file)")
        if corpus_ids is not None and did not in corpus_ids:
            raise InputError(f"{p}:{n}: unknown document id {did!r} (not in {corpus_name})")
        qrels.setdefault(qid, {})[did] = value
    if not any(g >= 1 for judged in qrels.values() for g in judged.values()):
        raise InputError(f"{p}: no relevant judgement (score >= 1); the split is empty")
    return qrels


def qrels_lines(path: str | Path) -> dict[str, int]:
    """Document id -> the first qrels line naming it (for errors found after reading)."""
    lines: dict[str, int] = {}
    for n, row in _rows_tsv(_file(path)):
        cells = [c.strip() for c in row]
        if len(cells) in (3, 4) and cells[:2] != ["query-id", "corpus-id"]:
            lines.setdefault(cells[2] if len(cells) == 4 else cells[1], n)
    return lines


def _rows_tsv(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Tab-separated columns (commas for .csv; whitespace when a line has no tab)."""
    comma = path.suffix.lower() == ".csv"
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if comma:
                yield n, line.split(",")
            else:
                yield n, line.split("\t") if "\t" in line else line.split()


def read_queries(path: str | Path) -> dict[str, str]:
    """Queries from `.jsonl` (`_id`, `text`) or `.tsv` (id, text)."""
    p = _file(path)
    if p.suffix.lower() in (".tsv", ".txt"):
        out: dict[str, str] = {}
        for n, row in _rows_tsv(p):
            if len(row) < 2 or not row[1].strip():
                raise InputError(f"{p}:{n}: expected 'id<TAB>text'")
            if row[0] in out:
                raise InputError(f"{p}:{n}: duplicate id {row[0]!r}")
            out[row[0].strip()] = "\t".join(row[1:]).strip()
        if not out:
            raise InputError(f"{p}: empty")
        return out
    return _ids_and_texts(p, with_title=False)


def read_beir(folder: str | Path, split: str = "test") -> RetrievalData:
    """A BEIR / MTEB retrieval folder."""
    base = Path(folder)
    if not base.is_dir():
        raise NotFound(f"no such folder: {base}; a retrieval task is a BEIR folder")
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (base / name).is_file():
            raise InputError(
                f"{base} has no {name}; a BEIR folder has corpus.jsonl, "
                "queries.jsonl and qrels/<split>.tsv"
            )
    qrels_path = base / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (base / "qrels").glob("*.tsv"))
        raise InputError(
            f"{base} has no qrels/{split}.tsv; splits here: {', '.join(have) or 'none'}"
        )
    corpus = _ids_and_texts(base / "corpus.jsonl", with_title=True)
    queries = _ids_and_texts(base / "queries.jsonl", with_title=False)
    qrels = read_qrels(qrels_path, queries, set(corpus), "corpus.jsonl")
    qrels = {q: judged for q, judged in qrels.items() if any(g >= 1 for g in judged.values())}
    return RetrievalData(corpus, {q: queries[q] for q in qrels}, qrels)
