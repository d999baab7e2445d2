"""Re-embed a collection's stored texts with another model, then switch to it in one commit.

Adopting a fine-tuned model should not mean re-ingesting files. The new vectors are written to a
staging vector file beside the collection (`reembed.bin`, the vector file's own format, see
vecfile.py), and SQLite records which chunk each staged row belongs to (table `reembed_slots`)
and how many rows are committed (meta `reembed_staged`). Each batch is one transaction that
leaves the collection's generation alone, so searches and writes carry on with the old model,
and the rows are synced before the commit that records them: a run interrupted or killed
(kill -9) resumes from what it committed. Chunks written meanwhile by other processes are
embedded too; the last few inside the switch.

The switch is one write transaction, the same step as a compaction (`slots.rewrite`): the staged
rows, in chunk row id order, are copied into the next epoch's vector file, the slots renumbered,
and the collection's `model`, `dim`, `vector_epoch` and `model_generation` change together. A
reader's snapshot is entirely before or after it: open collections in any process see the new
`model_generation` at their next search and load the new model for queries
(`Collection._follow_model`); the new epoch makes every process map the new file and rebuild
its ANN index. The previous vector file and the staging file are removed after the commit, as
after a compaction (processes still mapping the old file keep reading it).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from embedbox import catalog
from embedbox.errors import Conflict, InputError, StorageError
from embedbox.store import db, slots, vecfile
from embedbox.store import rows as sq
from embedbox.store.paths import DB_FILE

if TYPE_CHECKING:
    from embedbox.embed import Embedder

Progress = Callable[[int, int], None]
STAGE = "reembed_slots"  # chunk row id -> row of the staging file
STAGE_META = "reembed"  # the run the staged vectors belong to: model, dim, model generation
STAGED = "reembed_staged"  # committed rows of the staging file
STAGE_FILE = "reembed.bin"
CATCH_UP_IN_SWITCH = 1000  # late chunks are embedded inside the switch this many at a time


class Target(Protocol):
    """What is re-embedded: an open collection (`Collection` satisfies this; the store layer
    below it does not import it)."""

    path: Path
    name: str
    model: str
    kind: str
    read_only: bool

    @property
    def dim(self) -> int | None: ...

    @property
    def precision(self) -> str: ...


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
    collection: Target,
    model: str | Embedder,
    *,
    batch: int = 256,
    progress: Progress | None = None,
) -> ReembedReport:
    """Re-embed every chunk of `collection` with `model` (a name, folder or loaded `Embedder`)
    and switch the collection to it atomically. Safe to run again after a crash: what was
    staged for the same model is kept."""
    from embedbox.embed import Embedder

    if collection.kind not in ("text", "text-image"):
        raise InputError(
            f"collection {collection.name!r} holds {collection.kind} vectors; only text "
            "collections can be re-embedded from their stored texts"
        )
    if collection.read_only:
        raise StorageError(
            f"collection {collection.name!r} is open read-only; make it writable to re-embed it",
            "read_only",
        )
    if batch < 1:
        raise InputError("batch must be at least 1")
    emb = model if isinstance(model, Embedder) else Embedder(str(model))
    start = time.perf_counter()
    folder = collection.path
    stage = _Stage(folder / STAGE_FILE, emb.dim, collection.precision)
    conn = db.connect(folder / DB_FILE)
    try:
        run: dict[str, Any] = {
            "model": catalog.canonical_name(emb.name),
            "dim": emb.dim,
            "from_model_generation": db.model_generation(conn),
        }
        resumed = _begin(conn, run, stage)
        total = sq.count_chunks(conn)
        embedded = truncated = 0
        for rids, texts in _pending(conn, batch):
            vectors, cut = _embed(emb, texts)  # no transaction open while the model runs
            with _staging(conn, run):
                stage.add(conn, rids, vectors)
            embedded += len(rids)
            truncated += cut
            if progress is not None:
                progress(min(resumed + embedded, total), total)
        caught, late_cut, old_file = _switch(conn, run, emb, stage)
        total = sq.count_chunks(conn)
    finally:
        conn.close()
    old_file.unlink(missing_ok=True)  # as after a compaction: readers keep their mapping
    stage.path.unlink(missing_ok=True)
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
        truncated=truncated + late_cut,
        seconds=round(time.perf_counter() - start, 2),
        model_generation=int(run["from_model_generation"]) + 1,
    )


class _Stage:
    """The staging vector file and its rows' record in SQLite (inside transactions)."""

    def __init__(self, path: Path, dim: int, precision: str) -> None:
        self.path, self.dim, self.precision = path, dim, precision

    def committed(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (STAGED,)).fetchone()
        return int(json.loads(row[0])) if row else 0

    def add(self, conn: sqlite3.Connection, rids: list[int], vectors: np.ndarray) -> None:
        """Write rows for these chunks past the committed end, synced, and record them."""
        out = vecfile.Appender(self.path, self.dim, self.precision, self.committed(conn))
        first = out.add(vectors)
        out.flush()  # on disk before the commit that records the rows
        conn.executemany(
            f"INSERT OR REPLACE INTO {STAGE}(chunk, slot) VALUES (?, ?)",
            [(rid, first + i) for i, rid in enumerate(rids)],
        )
        db.set_meta(conn, STAGED, out.slots)

    def readable(self, conn: sqlite3.Connection) -> bool:
        """Whether the file holds the rows SQLite says were committed."""
        count = self.committed(conn)
        if count == 0:
            return True
        try:
            vecfile.open_mapped(self.path, self.dim, self.precision, count)
        except (OSError, StorageError):
            return False
        return True

    def mapped(self, conn: sqlite3.Connection) -> vecfile.Mapped:
        return vecfile.open_mapped(self.path, self.dim, self.precision, self.committed(conn))


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
        if conn.in_transaction:
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


def _begin(conn: sqlite3.Connection, run: dict[str, Any], stage: _Stage) -> int:
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
            f"CREATE TABLE IF NOT EXISTS {STAGE} (chunk INTEGER PRIMARY KEY, slot INTEGER NOT NULL)"
        )
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (STAGE_META,)).fetchone()
        if row is None or json.loads(row[0]) != run or not stage.readable(conn):
            conn.execute(f"DELETE FROM {STAGE}")
            db.set_meta(conn, STAGE_META, run)
            db.set_meta(conn, STAGED, 0)
            stage.path.unlink(missing_ok=True)  # a new file: another run may have had another dim
        # Chunks deleted since they were staged: their rows are skipped at the switch.
        conn.execute(f"DELETE FROM {STAGE} WHERE chunk NOT IN (SELECT rid FROM chunks)")
        staged = int(conn.execute(f"SELECT COUNT(*) FROM {STAGE}").fetchone()[0])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return staged


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


def _embed(emb: Embedder, texts: list[str]) -> tuple[np.ndarray, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counted instead: chunks were cut for the old model
        result = emb.encode(texts, input_type="document", truncate=False)
    return np.asarray(result.vectors, np.float32), len(result.truncated)


def _switch(
    conn: sqlite3.Connection, run: dict[str, Any], emb: Embedder, stage: _Stage
) -> tuple[int, int, Path]:
    """The one transaction that moves the collection to the new vectors and model ->
    (chunks embedded inside it, of which truncated, the previous vector file)."""
    caught = truncated = 0
    with db.write(conn):
        _check_run(conn, run)
        late = _unstaged(conn, 0, CATCH_UP_IN_SWITCH)
        while late:  # written since the last pass; writers wait for this transaction
            vectors, cut = _embed(emb, [t for _, t in late])
            stage.add(conn, [r for r, _ in late], vectors)
            caught += len(late)
            truncated += cut
            late = _unstaged(conn, late[-1][0], CATCH_UP_IN_SWITCH)
        order = np.fromiter(
            (
                r[0]
                for r in conn.execute(
                    f"SELECT s.slot FROM chunks c JOIN {STAGE} s ON s.chunk = c.rid ORDER BY c.rid"
                )
            ),
            np.int64,
        )
        if len(order) != sq.count_chunks(conn):  # every chunk must have its staged vector
            raise Conflict("chunks changed during the switch; run the re-embed again")
        source = stage.mapped(conn)
        try:
            old_file = slots.rewrite(
                conn, stage.path.parent, source, order, stage.dim, stage.precision
            )
        finally:
            if source.file is not None:
                source.file.close()
        db.set_meta(conn, "model", run["model"])
        db.set_meta(conn, "dim", run["dim"])
        db.set_meta(conn, "model_generation", int(run["from_model_generation"]) + 1)
        conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (STAGE_META, STAGED))
        conn.execute(f"DROP TABLE {STAGE}")
        db.mark_deleted(conn)  # every vector changed: caches reload rather than append
    return caught, truncated, old_file
