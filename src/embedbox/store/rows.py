"""All row-level SQL of a collection: insert/delete documents with their chunks and FTS rows,
look-ups by id, counts, the embedding cache, keyword (FTS5) queries, the rows behind hits and
the chunk rows of the vector table. Vectors themselves live in the vector file; a chunk row
records its slot there."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from embedbox.inputs import may_need_repair, repair
from embedbox.store.embedding import Prepared

BATCH = 500  # values per SQL IN (...)
HitRow = tuple[int, int, int, int, str, str, str, int]  # rid idx start end id text meta n_chunks


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def batches(values: Sequence[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def existing(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[int, str, str]]:
    """id -> (row id, content hash, metadata JSON) of the ids that are stored."""
    out: dict[str, tuple[int, str, str]] = {}
    for part in batches(ids):
        marks = _marks(part)
        for rid, doc_id, h, meta in conn.execute(
            f"SELECT rid, id, hash, metadata FROM documents WHERE id IN ({marks})", part
        ):
            out[doc_id] = (rid, hex_hash(h), meta)
    return out


def blob_hash(h: str | None) -> bytes | None:
    """Content hashes (32 hex digits) are stored as their 16 bytes (schema 2)."""
    return None if h is None else bytes.fromhex(h)


def hex_hash(h: bytes | str) -> str:
    return h.hex() if isinstance(h, bytes) else h


def by_ids(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[str, str]]:
    """id -> (text, metadata JSON) of the ids that are stored."""
    rows: dict[str, tuple[str, str]] = {}
    for part in batches(ids):
        marks = _marks(part)
        for doc_id, text, meta in conn.execute(
            f"SELECT id, text, metadata FROM documents WHERE id IN ({marks})", part
        ):
            rows[doc_id] = (text, meta)
    return rows


def count_documents(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])


def count_chunks(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])


def doc_rids(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[tuple[int, str]]:
    """(row id, id) of the documents matching a compiled filter, in insertion order."""
    return conn.execute(
        f"SELECT d.rid, d.id FROM documents d WHERE {sql} ORDER BY d.rid", params
    ).fetchall()


def set_metadata(conn: sqlite3.Connection, rid: int, meta: dict[str, Any]) -> None:
    conn.execute("UPDATE documents SET metadata = ? WHERE rid = ?", (json.dumps(meta), rid))


def slots_by_hash(conn: sqlite3.Connection, hashes: list[str]) -> dict[str, int]:
    """Vector slots of stored chunks with these content hashes (the embedding cache)."""
    out: dict[str, int] = {}
    for part in batches(hashes):
        rows = conn.execute(
            f"SELECT hash, MIN(slot) FROM chunks WHERE hash IN ({_marks(part)}) GROUP BY hash",
            [blob_hash(h) for h in part],
        )
        out.update((hex_hash(h), slot) for h, slot in rows)
    return out


def page(
    conn: sqlite3.Connection, sql: str, params: list[Any], after: int, size: int
) -> list[tuple[int, str, str, str]]:
    """The next `size` documents matching a compiled filter after row id `after`, in order."""
    return conn.execute(
        "SELECT d.rid, d.id, d.text, d.metadata FROM documents d "
        f"WHERE d.rid > ? AND {sql} ORDER BY d.rid LIMIT ?",
        [after, *params, size],
    ).fetchall()


def insert(
    conn: sqlite3.Connection,
    doc_id: str,
    text: str,
    meta: dict[str, Any],
    prep: Prepared,
    slot: int,
) -> None:
    """A document and its chunks, whose vectors are at `slot`, `slot + 1`, ... of the file."""
    cur = conn.execute(
        "INSERT INTO documents(id, text, metadata, hash, n_chunks, added) VALUES (?,?,?,?,?,?)",
        (doc_id, text, json.dumps(meta), blob_hash(prep.hash), len(prep.spans), time.time()),
    )
    doc = cur.lastrowid
    for idx, ((start, end), h) in enumerate(zip(prep.spans, prep.chunk_hashes, strict=True)):
        cur = conn.execute(
            "INSERT INTO chunks(doc, idx, start, end, hash, vector, slot) VALUES (?,?,?,?,?,x'',?)",
            (doc, idx, start, end, blob_hash(h), slot + idx),
        )
        conn.execute("INSERT INTO fts(rowid, text) VALUES (?, ?)", (cur.lastrowid, text[start:end]))


def delete_docs(conn: sqlite3.Connection, rids: list[int]) -> None:
    for part in batches(rids):
        marks = _marks(part)
        conn.execute(
            f"DELETE FROM fts WHERE rowid IN (SELECT rid FROM chunks WHERE doc IN ({marks}))",
            part,
        )
        conn.execute(f"DELETE FROM chunks WHERE doc IN ({marks})", part)
        conn.execute(f"DELETE FROM documents WHERE rid IN ({marks})", part)


def holds_text(conn: sqlite3.Connection, key: str) -> bool:
    """Whether some document stores text under metadata `key` (one indexed scan, stops early)."""
    path = f'$."{key}"'
    sql = f"SELECT 1 FROM documents WHERE json_type(metadata, '{path}') = 'text' LIMIT 1"
    return conn.execute(sql).fetchone() is not None


def filter_docs(conn: sqlite3.Connection, sql: str, params: list[Any]) -> set[int]:
    """Row ids of the documents matching a compiled filter."""
    return {r[0] for r in conn.execute(f"SELECT d.rid FROM documents d WHERE {sql}", params)}


def keyword(
    conn: sqlite3.Connection, match: str, sql: str, params: list[Any], k: int
) -> list[tuple[int, float]]:
    """Best chunk per document by BM25 -> [(chunk row id, score = -bm25)], best first."""
    limit = k * 4
    while True:
        rows = conn.execute(
            "SELECT fts.rowid, c.doc, bm25(fts) AS s FROM fts "
            "JOIN chunks c ON c.rid = fts.rowid JOIN documents d ON d.rid = c.doc "
            f"WHERE fts MATCH ? AND {sql} ORDER BY s LIMIT ?",
            [match, *params, limit],
        ).fetchall()
        best: dict[int, tuple[int, float]] = {}
        for rid, doc, score in rows:
            best.setdefault(doc, (rid, -float(score)))
        if len(best) >= k or len(rows) < limit:
            return list(best.values())[:k]
        limit *= 4


def hit_rows(conn: sqlite3.Connection, rids: list[int]) -> dict[int, HitRow]:
    """chunk row id -> (rid, idx, start, end, doc id, text, metadata JSON, n_chunks)."""
    found: dict[int, HitRow] = {}
    for part in batches(rids):  # one query for any usual k
        sql = (
            "SELECT c.rid, c.idx, c.start, c.end, d.id, d.text, d.metadata, d.n_chunks "
            f"FROM chunks c JOIN documents d ON d.rid = c.doc WHERE c.rid IN ({_marks(part)})"
        )
        found.update((row[0], row) for row in conn.execute(sql, part))
    return found


def doc_fields(
    conn: sqlite3.Connection, doc_rids: list[int], text: bool, metadata: bool
) -> dict[int, tuple[str, str]]:
    """document row id -> (text, metadata JSON); a field not asked for is "" / "{}"."""
    cols = ("text" if text else "''") + ", " + ("metadata" if metadata else "'{}'")
    found: dict[int, tuple[str, str]] = {}
    for part in batches(doc_rids):
        sql = f"SELECT rid, {cols} FROM documents WHERE rid IN ({_marks(part)})"
        found.update((rid, (t, m)) for rid, t, m in conn.execute(sql, part))
    return found


TableRow = tuple[int, int, int, int, int, int, str, int]  # rid doc idx start end n_chunks id slot


def table_rows(conn: sqlite3.Connection, after: int) -> Iterator[list[TableRow]]:
    """Chunk rows with row id > `after`, in row id order, in bounded batches."""
    cur = conn.execute(
        "SELECT c.rid, c.doc, c.idx, c.start, c.end, d.n_chunks, d.id, c.slot "
        "FROM chunks c JOIN documents d ON d.rid = c.doc WHERE c.rid > ? ORDER BY c.rid",
        (after,),
    )
    while rows := cur.fetchmany(20_000):
        yield rows


def rid_slots(conn: sqlite3.Connection, upto: int) -> np.ndarray:
    """(row id, slot) of every chunk with row id <= `upto`, in row id order -> (n, 2) int64."""
    cur = conn.execute("SELECT rid, slot FROM chunks WHERE rid <= ? ORDER BY rid", (upto,))
    flat = np.fromiter((v for row in cur for v in row), np.int64)
    return flat.reshape(-1, 2)


def live_slots(conn: sqlite3.Connection) -> np.ndarray:
    """Slots of all chunks, ascending (slots ascend with row ids)."""
    cur = conn.execute("SELECT slot FROM chunks ORDER BY rid")
    return np.fromiter((r[0] for r in cur), np.int64)


def renumber_slots(conn: sqlite3.Connection) -> None:
    """Slots 0, 1, ... in row id order (after the live rows were copied to a new file)."""
    conn.execute(
        "UPDATE chunks SET slot = r.n FROM (SELECT rid, row_number() OVER (ORDER BY rid) - 1 "
        "AS n FROM chunks) AS r WHERE r.rid = chunks.rid"
    )


def load_metadata(raw: str) -> dict[str, Any]:
    """Stored metadata JSON -> dict. Rows written before Unicode was checked on the way in may
    hold lone surrogates: those are replaced, so such a row still reads and prints."""
    if raw == "{}":
        return {}
    meta = json.loads(raw)
    return repair(meta) if may_need_repair(raw) else meta
