"""Vectors in write transactions: appending them to the vector file, and compacting it.

Both run inside `db.write` (the SQLite write lock is held, so one process at a time), and both
put the vectors on disk before the commit that records their slots (see vecfile.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from embedbox.store import db, vecfile
from embedbox.store import rows as sq

COMPACT_MIN = 1000  # dead slots tolerated whatever the size


@contextmanager
def appending(
    conn: sqlite3.Connection, folder: Path, dim: int, precision: str
) -> Iterator[vecfile.Appender]:
    """Inside a write transaction: hand out slots for new vectors; on success write them,
    sync the file and record the new slot count (the transaction then commits both)."""
    epoch, slots = db.vector_state(conn)
    out = vecfile.Appender(folder / vecfile.file_name(epoch), dim, precision, slots)
    yield out
    commit(conn, out)


def commit(conn: sqlite3.Connection, out: vecfile.Appender) -> None:
    """Write and sync the appender's pending vectors and record the slot count."""
    if out.pending:
        out.flush()
        db.set_meta(conn, "slots", out.slots)


def compact_if_needed(
    conn: sqlite3.Connection, folder: Path, dim: int | None, precision: str
) -> Path | None:
    """Inside a write transaction that deleted chunks: once dead slots are more than a fifth of
    the file (and `COMPACT_MIN`), copy the live vectors into the next epoch's file and renumber
    the slots. -> the old file, to delete after the commit (None: nothing compacted)."""
    epoch, slots = db.vector_state(conn)
    dead = slots - sq.count_chunks(conn)
    if dim is None or dead <= max(COMPACT_MIN, slots // 5):
        return None
    source = vecfile.open_mapped(folder / vecfile.file_name(epoch), dim, precision, slots)
    return rewrite(conn, folder, source, sq.live_slots(conn), dim, precision)


def rewrite(
    conn: sqlite3.Connection,
    folder: Path,
    source: vecfile.Mapped,
    rows: np.ndarray,
    dim: int,
    precision: str,
) -> Path:
    """Inside a write transaction: the rows of `source` at `rows` (one per chunk, in chunk row
    id order) become the next epoch's vector file, synced before the commit that renumbers the
    slots 0, 1, ... and names the new file. -> the old file, to delete after the commit.

    Compaction copies the live rows of the current file; `collection reembed` the rows it
    staged with the new model (`dim` is then the new one)."""
    epoch, _ = db.vector_state(conn)
    vecfile.compact(source, rows, folder / vecfile.file_name(epoch + 1), dim, precision)
    sq.renumber_slots(conn)
    db.set_meta(conn, "vector_epoch", epoch + 1)
    db.set_meta(conn, "slots", len(rows))
    return folder / vecfile.file_name(epoch)


def remove_old_files(folder: Path, epoch: int) -> None:
    """Vector files of epochs before `epoch` (left by compactions). Processes that still map
    one keep reading it; one that opens it too late reads the database again."""
    for path in folder.glob("vectors-*.bin"):
        stem = path.stem.removeprefix("vectors-")
        if stem.isdigit() and int(stem) < epoch:
            path.unlink(missing_ok=True)
