"""Re-embed a collection's stored texts with another model, then switch to it in one commit.

Adopting a fine-tuned model should not mean re-ingesting files. The new vectors are first staged
in a side table of the same database (`reembed_vectors`: chunk row id -> vector), in batches that
each commit on their own without touching the collection's generation, so searches and writes
carry on against the old model and an interrupted or killed run resumes where it stopped.
Chunks written meanwhile by other processes are embedded too; the last few inside the switch.

The switch is one write transaction: every chunk row is rewritten under a new row id with its new
vector (its keyword index entry moves with it), the collection's `model` and `dim` change, and
`model_generation` and the generations go up. A reader's snapshot is entirely before or after
it; open collections in any process see the new `model_generation` at their next search and
load the new model for queries (see `Collection._follow_model`). New row ids make every
process's vector matrix and HNSW index rebuild rather than keep an old vector under a known id.

Chunk boundaries are kept: they were cut with the old model's tokenizer, so a chunk longer than
the new model's window is truncated (counted in the report).
"""

from __future__ import annotations

import json
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from embedbox.errors import Conflict, InputError
from embedbox.store import db
from embedbox.store.paths import DB_FILE
from embedbox.store.prepare import canonical_model
from embedbox.store.vectors import encode_vector

if TYPE_CHECKING:
    from embedbox.collection import Collection
    from embedbox.embed import Embedder

Progress = Callable[[int, int], None]
STAGE = "reembed_vectors"
STAGE_META = "reembed"  # the run the staged vectors belong to
INDEX_FILES = ("index.faiss", "index.json")  # the HNSW index (store/ann.py), rebuilt after
CATCH_UP_IN_SWITCH = 1000  # at most this many late chunks are embedded inside the switch
PAGE = 5000


@dataclass(frozen=True)
class ReembedReport:
    """`embedded`: chunks embedded by this run; `resumed`: staged by an earlier, interrupted
    one; `caught_up`: written by others during the run and embedded at the switch;
    `truncated`: chunks longer than the new model's window."""

    collection: str
    old_model: str
    new_model: str
    old_dim: int | None
    new_dim: int
    chunks: int
    embedded: int
    resumed: int
    caught_up: int
    truncated: int
    seconds: float
    model_generation: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reembed(
    collection: Collection,
    model: str | Embedder,
    *,
    batch: int = 256,
    progress: Progress | None = None,
) -> ReembedReport:
    """Re-embed every chunk of `collection` with `model` (a name, folder or loaded `Embedder`)
    and switch the collection to it atomically. Safe to run again after a crash: staged
    vectors of the same model are kept."""
    from embedbox.embed import Embedder

    if collection.kind not in ("text", "text-image"):
        raise InputError(
            f"collection {collection.name!r} holds {collection.kind} vectors; only text "
            "collections can be re-embedded from their stored texts"
        )
    if batch < 1:
        raise InputError("batch must be at least 1")
    emb = model if isinstance(model, Embedder) else Embedder(str(model))
    start = time.perf_counter()
    conn = db.connect(collection.path / DB_FILE)
    try:
        run: dict[str, Any] = {
            "model": canonical_model(emb.name),
            "dim": emb.dim,
            "from_model_generation": db.model_generation(conn),
        }
        resumed = _begin(conn, run)
        total = _count(conn, "SELECT COUNT(*) FROM chunks")
        embedded = truncated = 0
        for texts_rids, texts in _pending(conn, batch):
            truncated += _stage(conn, run, emb, texts_rids, texts, collection.precision)
            embedded += len(texts)
            if progress is not None:
                progress(min(resumed + embedded, total), total)
        caught, late_truncated = _switch(conn, run, emb, collection.precision)
    finally:
        conn.close()
    for name in INDEX_FILES:  # stale now; the next search builds one from the new vectors
        (collection.path / name).unlink(missing_ok=True)
    return ReembedReport(
        collection=collection.name,
        old_model=collection.model,
        new_model=str(run["model"]),
        old_dim=collection.dim,
        new_dim=emb.dim,
        chunks=total,
        embedded=embedded,
        resumed=resumed,
        caught_up=caught,
        truncated=truncated + late_truncated,
        seconds=round(time.perf_counter() - start, 2),
        model_generation=int(run["from_model_generation"]) + 1,
    )


@contextmanager
def _staging(conn: sqlite3.Connection, run: dict[str, Any]) -> Iterator[sqlite3.Connection]:
    """A write transaction that leaves the generation alone (searchers have nothing to reload)
    and checks that the staged vectors still belong to this run."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        _check_run(conn, run)
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _check_run(conn: sqlite3.Connection, run: dict[str, Any]) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (STAGE_META,)).fetchone()
    if row is None or json.loads(row[0]) != run:
        other = json.loads(row[0])["model"] if row else "none"
        raise Conflict(
            f"another re-embed of this collection started meanwhile (model {other}); run one "
            "at a time"
        )
    if db.model_generation(conn) != run["from_model_generation"]:
        raise Conflict("the collection switched models meanwhile; run the re-embed again")


def _begin(conn: sqlite3.Connection, run: dict[str, Any]) -> int:
    """Create the staging table; keep what an interrupted run of the same model staged (and
    drop anything else) -> the number of chunks already staged."""
    blank = conn.execute("SELECT id FROM documents WHERE trim(text) = '' LIMIT 1").fetchone()
    if blank is not None:
        raise InputError(
            f"document {blank[0]!r} has no stored text (it was added as a vector), so the "
            "collection cannot be re-embedded from its texts"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {STAGE} (chunk INTEGER PRIMARY KEY, vector BLOB NOT NULL)"
        )
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (STAGE_META,)).fetchone()
        if row is None or json.loads(row[0]) != run:
            conn.execute(f"DELETE FROM {STAGE}")
            db.set_meta(conn, STAGE_META, run)
        # Chunks deleted since they were staged: their vectors are of no use.
        conn.execute(f"DELETE FROM {STAGE} WHERE chunk NOT IN (SELECT rid FROM chunks)")
        staged = _count(conn, f"SELECT COUNT(*) FROM {STAGE}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return staged


def _count(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def _unstaged(conn: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, str]]:
    """(chunk row id, chunk text) of chunks with no staged vector, after row id `after`."""
    return conn.execute(
        "SELECT c.rid, substr(d.text, c.start + 1, c.end - c.start) FROM chunks c "
        f"JOIN documents d ON d.rid = c.doc LEFT JOIN {STAGE} s ON s.chunk = c.rid "
        "WHERE s.chunk IS NULL AND c.rid > ? ORDER BY c.rid LIMIT ?",
        (after, limit),
    ).fetchall()


def _pending(conn: sqlite3.Connection, batch: int) -> Iterator[tuple[list[int], list[str]]]:
    """Batches of chunks still to embed, until none is left (new ones included)."""
    after = 0
    while True:
        rows = _unstaged(conn, after, batch)
        if not rows:
            if after == 0:
                return
            after = 0  # one more pass from the start: chunks written by others meanwhile
            rows = _unstaged(conn, after, batch)
            if not rows:
                return
        after = rows[-1][0]
        yield [r[0] for r in rows], [r[1] for r in rows]


def _embed(emb: Embedder, texts: list[str]) -> tuple[Any, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counted instead: chunks were cut for the old model
        result = emb.encode(texts, input_type="document", truncate=False)
    return result.vectors, len(result.truncated)


def _stage(
    conn: sqlite3.Connection,
    run: dict[str, Any],
    emb: Embedder,
    rids: list[int],
    texts: list[str],
    precision: str,
) -> int:
    vectors, truncated = _embed(emb, texts)  # no transaction open while the model runs
    with _staging(conn, run):
        conn.executemany(
            f"INSERT OR REPLACE INTO {STAGE}(chunk, vector) VALUES (?, ?)",
            [(r, encode_vector(v, precision)) for r, v in zip(rids, vectors, strict=True)],
        )
    return truncated


def _switch(
    conn: sqlite3.Connection, run: dict[str, Any], emb: Embedder, precision: str
) -> tuple[int, int]:
    """The one transaction that moves the collection to the new vectors and model ->
    (chunks embedded inside it, of which truncated)."""
    caught = truncated = 0
    with db.write(conn):
        _check_run(conn, run)
        late = _unstaged(conn, 0, CATCH_UP_IN_SWITCH + 1)
        while late:  # written since the last pass; writers wait for this transaction
            vectors, cut = _embed(emb, [t for _, t in late])
            conn.executemany(
                f"INSERT OR REPLACE INTO {STAGE}(chunk, vector) VALUES (?, ?)",
                [(r, encode_vector(v, precision)) for (r, _), v in zip(late, vectors, strict=True)],
            )
            caught += len(late)
            truncated += cut
            late = _unstaged(conn, late[-1][0], CATCH_UP_IN_SWITCH + 1)
        _rewrite_chunks(conn)
        db.set_meta(conn, "model", run["model"])
        db.set_meta(conn, "dim", run["dim"])
        db.set_meta(conn, "model_generation", int(run["from_model_generation"]) + 1)
        conn.execute("DELETE FROM meta WHERE key = ?", (STAGE_META,))
        conn.execute(f"DROP TABLE {STAGE}")
        db.mark_deleted(conn)  # every vector changed: caches reload rather than append
    return caught, truncated


def _rewrite_chunks(conn: sqlite3.Connection) -> None:
    """Every chunk again under a new row id, with its staged vector; its FTS row follows."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS reembed_map (old INTEGER PRIMARY KEY, new INT)")
    conn.execute("DELETE FROM reembed_map")
    last = conn.execute("SELECT MAX(rid) FROM chunks").fetchone()[0] or 0
    after = 0
    while True:
        rows = conn.execute(
            "SELECT c.rid, c.doc, c.idx, c.start, c.end, c.hash, s.vector FROM chunks c "
            f"JOIN {STAGE} s ON s.chunk = c.rid WHERE c.rid > ? AND c.rid <= ? "
            "ORDER BY c.rid LIMIT ?",
            (after, last, PAGE),
        ).fetchall()
        if not rows:
            break
        for rid, doc, idx, begin, end, h, vector in rows:
            cur = conn.execute(
                "INSERT INTO chunks(doc, idx, start, end, hash, vector) VALUES (?,?,?,?,?,?)",
                (doc, idx, begin, end, h, vector),
            )
            conn.execute("INSERT INTO reembed_map(old, new) VALUES (?, ?)", (rid, cur.lastrowid))
        after = rows[-1][0]
    old = int(conn.execute("SELECT COUNT(*) FROM chunks WHERE rid <= ?", (last,)).fetchone()[0])
    if old != _count(
        conn, "SELECT COUNT(*) FROM reembed_map"
    ):  # every old chunk must have had a staged vector
        raise Conflict("chunks changed during the switch; run the re-embed again")
    conn.execute(
        "INSERT INTO fts(rowid, text) SELECT m.new, f.text FROM reembed_map m "
        "JOIN fts f ON f.rowid = m.old"
    )
    conn.execute("DELETE FROM fts WHERE rowid IN (SELECT old FROM reembed_map)")
    conn.execute("DELETE FROM chunks WHERE rid IN (SELECT old FROM reembed_map)")
    conn.execute("DELETE FROM reembed_map")
