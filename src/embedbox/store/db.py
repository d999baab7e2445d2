"""SQLite, the source of truth for a collection: connection settings, schema and migrations.

One database file per collection. WAL journal (readers never block the writer), a long
busy_timeout (no "database is locked" under contention), `BEGIN IMMEDIATE` write transactions and
`synchronous=FULL` (a committed batch survives a crash). Every write bumps `generation`, which
keys the in-memory vector table and the on-disk ANN index.

Schema 2 moved the chunk vectors out of SQLite into the collection's vector file (vecfile.py):
each chunk row records its `slot` there; meta `slots` is the number of committed slots and
`vector_epoch` names the current file (compaction starts the next one). Content hashes are
stored as 16 bytes instead of 32 hex digits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.errors import Conflict, StorageError
from embedbox.store import vecfile

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 60_000
CACHE_KIB = 8 * 1024  # page cache per connection

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    rid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    hash TEXT NOT NULL,
    n_chunks INTEGER NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE chunks (
    rid INTEGER PRIMARY KEY AUTOINCREMENT,
    doc INTEGER NOT NULL REFERENCES documents(rid) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    hash TEXT,
    vector BLOB NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc);
CREATE INDEX chunks_hash ON chunks(hash) WHERE hash IS NOT NULL;
CREATE VIRTUAL TABLE fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
"""

# Vectors live in the vector file; `vector` keeps an empty blob (the column is NOT NULL).
_V2 = """
ALTER TABLE chunks ADD COLUMN slot INTEGER;
INSERT INTO meta(key, value) VALUES ('slots', '0'), ('vector_epoch', '0');
"""

# version -> script that brings a database from version-1 to version. Append, never edit.
MIGRATIONS: dict[int, str] = {1: _V1, 2: _V2}


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """Open (or create) the database with the settings every embedbox connection uses.

    `read_only`: open without write access (a read-only folder or file); writes then fail with
    a `StorageError`. Errors opening a damaged file are `StorageError`s naming it.
    """
    try:
        if read_only:
            conn = _connect_read_only(path)
        else:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a network filesystem
                conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Search fetches k random rows per query: keep hot pages in memory, not one pread each
        # (the default 2 MB cache holds a few thousand rows). A cap, allocated as pages are read.
        # No mmap: a filter scans the documents table, and mapped pages (with the neighbours the
        # kernel maps around each fault) stay in the process's memory: 55 MB of a 61 MB file
        # after one filter on 400k documents, against this cap.
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    except sqlite3.DatabaseError as exc:
        raise storage_error(exc, path, "open") from exc


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection. A WAL database in a folder we cannot write may lack the -shm
    file readers need; then it is opened as immutable (nobody can be writing it here)."""
    uri = path.resolve().as_uri()
    try:
        return _probe(uri + "?mode=ro")
    except sqlite3.OperationalError:
        return _probe(uri + "?mode=ro&immutable=1")


def _probe(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def storage_error(exc: sqlite3.Error, path: Path, doing: str) -> StorageError:
    """An SQLite failure as one clear line: what happened to which file and what to do."""
    text = str(exc)
    low = text.lower()
    if "is full" in low or "disk i/o" in low:
        reason, why = "full", "the disk is full (or failing)"
        fix = "free some space and run the command again: what was committed is kept"
    elif "readonly" in low or "read-only" in low or "attempt to write" in low:
        reason, why = "read_only", "it is read-only"
        fix = "make the folder writable, or only read from it"
    elif "not a database" in low or "malformed" in low or "corrupt" in low:
        reason, why = "damaged", "the file is damaged"
        fix = "see `embedbox collection check`; restore the file from a copy"
    elif "unable to open" in low:
        reason, why = "unreadable", "the file cannot be opened"
        fix = "check that the folder exists and is readable"
    else:
        reason, why, fix = "other", text, "see the SQLite error above"
    detail = "" if why == text else f" ({text})"
    return StorageError(f"cannot {doing} {path}: {why}{detail}; {fix}", reason)


@contextmanager
def write(conn: sqlite3.Connection, path: Path | None = None) -> Iterator[sqlite3.Connection]:
    """A write transaction that bumps the generation; rolled back on any error. SQLite errors
    (full disk, read-only file) become `StorageError`s naming `path`."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite has already rolled back after some errors
                conn.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise storage_error(exc, path or Path(db_file(conn)), "write to") from exc


def db_file(conn: sqlite3.Connection) -> str:
    """The file behind a connection."""
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def integrity(conn: sqlite3.Connection) -> list[str]:
    """SQLite's integrity check: [] when the database is sound, else what is wrong."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if rows == ["ok"] else rows


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def create(conn: sqlite3.Connection, meta: dict[str, Any]) -> None:
    """Create the schema at the latest version and record the collection's settings."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if version(conn) != 0:
            raise Conflict("collection already exists")
        for v in sorted(MIGRATIONS):
            _run_script(conn, MIGRATIONS[v])
        rows = {**meta, "generation": 0, "delete_generation": 0, "schema_version": SCHEMA_VERSION}
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in rows.items()],
        )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def migrate(conn: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
    """Bring an existing database up to SCHEMA_VERSION, one transaction per step."""
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise Conflict(
            f"{path} has schema version {current}, newer than this embedbox ({SCHEMA_VERSION}); "
            "upgrade embedbox"
        )
    if current == 0:
        raise StorageError(f"{path} is not an embedbox collection (no schema)")
    if current < SCHEMA_VERSION and read_only:
        raise StorageError(
            f"{path} was written by an older embedbox (schema {current}); open it once with "
            "write access to upgrade it",
            "read_only",
        )
    for v in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) < v:
                _run_script(conn, MIGRATIONS[v])
                if v == 2:
                    _move_vectors_out(conn, path.parent)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(v),))
                conn.execute(f"PRAGMA user_version = {v}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _move_vectors_out(conn: sqlite3.Connection, folder: Path) -> None:
    """Schema 1 -> 2, inside its transaction: chunk vectors from SQLite into the vector file, in
    row id order, synced before the commit that records their slots; content hashes from hex
    text to their 16 bytes."""
    conn.create_function("unhex16", 1, lambda h: bytes.fromhex(h) if isinstance(h, str) else h)
    conn.execute("UPDATE documents SET hash = unhex16(hash)")
    conn.execute("UPDATE chunks SET hash = unhex16(hash) WHERE hash IS NOT NULL")
    meta = read_meta(conn)
    rows = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    if not rows or meta.get("dim") is None:
        return
    dim, precision = int(meta["dim"]), str(meta["precision"])
    out = vecfile.Appender(folder / vecfile.file_name(0), dim, precision, 0)
    cur = conn.execute("SELECT rid, vector FROM chunks ORDER BY rid")
    slots: list[tuple[int, int]] = []
    while batch := cur.fetchmany(10_000):
        raw = np.frombuffer(b"".join(r[1] for r in batch), vecfile.DTYPES[precision])
        first = out.add(raw.reshape(len(batch), dim))
        slots += [(first + i, r[0]) for i, r in enumerate(batch)]
        if out.pending >= 200_000:  # bounded memory for big collections
            out.flush()
    out.flush()
    conn.executemany("UPDATE chunks SET slot = ?, vector = x'' WHERE rid = ?", slots)
    set_meta(conn, "slots", out.slots)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statements inside the current transaction (executescript would commit)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, json.dumps(value)),
    )


def vector_state(conn: sqlite3.Connection) -> tuple[int, int]:
    """(vector_epoch, slots): the current vector file and its number of committed slots."""
    rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('vector_epoch', 'slots')"))
    return int(rows["vector_epoch"]), int(rows["slots"])


def generations(conn: sqlite3.Connection) -> tuple[int, int]:
    """(generation, delete_generation): bumped by every write / by writes that remove vectors."""
    rows = dict(
        conn.execute(
            "SELECT key, value FROM meta WHERE key IN ('generation', 'delete_generation')"
        ).fetchall()
    )
    return int(rows["generation"]), int(rows["delete_generation"])


def mark_deleted(conn: sqlite3.Connection) -> None:
    """Inside a write: record that vectors were removed (caches must reload, not append)."""
    conn.execute(
        "UPDATE meta SET value = (SELECT CAST(value AS INTEGER) + 1 FROM meta "
        "WHERE key = 'generation') WHERE key = 'delete_generation'"
    )


def model_generation(conn: sqlite3.Connection) -> int:
    """How many times the collection switched models (`collection reembed`); 0 if never."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'model_generation'").fetchone()
    return int(row[0]) if row else 0
