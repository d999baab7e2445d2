"""Vectors in write transactions: appending them to the vector file, and compacting it.

Both run inside `db.write` (the SQLite write lock is held, so one process at a time), and both
put the vectors on disk before the commit that records their slots (see vecfile.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    old = folder / vecfile.file_name(epoch)
    live = sq.live_slots(conn)
    source = vecfile.open_mapped(old, dim, precision, slots)
    vecfile.compact(source, live, folder / vecfile.file_name(epoch + 1), dim, precision)
    sq.renumber_slots(conn)
    db.set_meta(conn, "vector_epoch", epoch + 1)
    db.set_meta(conn, "slots", len(live))
    return old


def remove_old_files(folder: Path, epoch: int) -> None:
    """Vector files of epochs before `epoch` (left by compactions). Processes that still map
    one keep reading it; one that opens it too late reads the database again."""
    for path in folder.glob("vectors-*.bin"):
        stem = path.stem.removeprefix("vectors-")
        if stem.isdigit() and int(stem) < epoch:
            path.unlink(missing_ok=True)
