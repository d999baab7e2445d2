"""The in-memory vector matrix of a collection, cached per process and keyed by generation.

SQLite holds the vectors; searching needs them as one contiguous float32 matrix. The matrix is
loaded once, then kept in step with the database: when only inserts happened since (the
`delete_generation` is unchanged) just the new rows are read, otherwise everything is reloaded.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field

import numpy as np

from embedbox.store import db

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}


def encode_vector(vec: np.ndarray, precision: str) -> bytes:
    return np.ascontiguousarray(vec, dtype=STORAGE_DTYPES[precision]).tobytes()


def decode_vectors(blobs: list[bytes], dim: int, precision: str) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), np.float32)
    raw = np.frombuffer(b"".join(blobs), dtype=STORAGE_DTYPES[precision])
    return raw.reshape(len(blobs), dim).astype(np.float32, copy=False)


@dataclass(frozen=True)
class VectorTable:
    """One consistent, never-modified view of a collection's chunks: row ids (sorted), their
    document row ids, the (n, dim) float32 matrix, and per row the chunk's number, span and
    chunk count and the document's id. A refresh makes a new table, so a reader holding one
    never sees rows and matrix from different moments."""

    dim: int
    generation: int = -1
    delete_generation: int = -1
    rids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    docs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    # per row: chunk number, start, end, and the number of chunks of its document
    chunks: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))
    ids: list[str] = field(default_factory=list)  # document id of each row: hits need no SQL
    one_chunk_per_doc: bool = True  # no document split into chunks: rows are documents

    def __len__(self) -> int:
        return len(self.rids)

    def positions(self, rids: np.ndarray) -> np.ndarray:
        """Row positions in the matrix of the given chunk row ids (all must be present)."""
        return np.searchsorted(self.rids, rids)


class SharedTable:
    """The latest `VectorTable` of one collection, shared by its `Collection`s in a process."""

    def __init__(self, dim: int, precision: str) -> None:
        self.dim, self.precision = dim, precision
        self.table = VectorTable(dim)
        self.lock = threading.Lock()

    def refresh(self, conn: sqlite3.Connection) -> VectorTable:
        """The table at the database's current generation. Only rows added since are read
        when nothing was deleted meanwhile (`delete_generation` unchanged)."""
        with self.lock:
            old = self.table
            if db.generations(conn)[0] == old.generation:
                return old
            parts = [(np.zeros((0, 6), np.int64), np.zeros((0, self.dim), np.float32))]
            ids: list[str] = []
            conn.execute("BEGIN")  # one read transaction: rows and generation agree
            try:
                gen, del_gen = db.generations(conn)
                append = del_gen == old.delete_generation and old.generation >= 0 and len(old)
                if append:
                    parts.append((np.column_stack([old.rids, old.docs, old.chunks]), old.matrix))
                    ids += old.ids
                cur = conn.execute(
                    "SELECT c.rid, c.doc, c.idx, c.start, c.end, d.n_chunks, d.id, c.vector "
                    "FROM chunks c JOIN documents d ON d.rid = c.doc "
                    "WHERE c.rid > ? ORDER BY c.rid",
                    (int(old.rids[-1]) if append else 0,),
                )
                while rows := cur.fetchmany(20_000):  # bounded transient memory
                    cols = np.array([r[:6] for r in rows], np.int64)
                    parts.append(
                        (cols, decode_vectors([r[7] for r in rows], self.dim, self.precision))
                    )
                    ids += [r[6] for r in rows]
            finally:
                conn.execute("COMMIT")
            cols = np.concatenate([p[0] for p in parts])
            mat = np.concatenate([p[1] for p in parts])
            docs = cols[:, 1].copy()
            self.table = VectorTable(
                self.dim,
                gen,
                del_gen,
                rids=cols[:, 0].copy(),
                docs=docs,
                matrix=mat,
                chunks=cols[:, 2:],
                ids=ids,
                one_chunk_per_doc=_all_distinct(docs),
            )
            return self.table


def _all_distinct(docs: np.ndarray) -> bool:
    if len(docs) < 2 or bool((docs[1:] > docs[:-1]).all()):  # the usual order: O(n)
        return True
    return len(np.unique(docs)) == len(docs)


_TABLES: dict[str, SharedTable] = {}
_TABLES_LOCK = threading.Lock()


def shared_table(key: str, dim: int, precision: str) -> SharedTable:
    """One SharedTable per collection folder (resolved path) per process."""
    with _TABLES_LOCK:
        shared = _TABLES.get(key)
        if shared is None or shared.dim != dim or shared.precision != precision:
            shared = _TABLES[key] = SharedTable(dim, precision)
        return shared


def forget(key: str) -> None:
    with _TABLES_LOCK:
        _TABLES.pop(key, None)


def top_docs(scores: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best-scoring row per document, top `k` documents -> (row positions, scores), best first."""
    n = len(scores)
    m = min(n, max(k * 4, k + 16))
    while True:
        part = np.argpartition(-scores, m - 1)[:m] if m < n else np.arange(n)
        order = part[np.argsort(-scores[part], kind="stable")]
        _, first = np.unique(docs[order], return_index=True)
        keep = order[np.sort(first)]
        if len(keep) >= k or m >= n:
            keep = keep[:k]
            return keep, scores[keep]
        m = min(n, m * 4)


def doc_vectors(
    table: VectorTable, doc_rids: np.ndarray, normalize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Document vectors (mean of each document's chunk rows, re-normalised) -> (vectors, found).

    `found[i]` is False for documents the table does not hold (written after it was read).
    Chunks of one document are inserted in one transaction, so their rows are contiguous.
    """
    docs, starts, counts = np.unique(table.docs, return_index=True, return_counts=True)
    at = np.searchsorted(docs, doc_rids)
    found = (at < len(docs)) & (docs[np.minimum(at, max(len(docs) - 1, 0))] == doc_rids)
    if not len(docs):
        return np.zeros((len(doc_rids), table.dim), np.float32), found
    s, c = starts[at[found]], counts[at[found]]
    out = np.zeros((len(doc_rids), table.dim), np.float32)
    vecs = table.matrix[s].copy()
    multi = np.nonzero(c > 1)[0]
    for j in multi:
        vecs[j] = table.matrix[s[j] : s[j] + c[j]].mean(axis=0)
    if normalize and len(multi):
        vecs[multi] /= np.maximum(np.linalg.norm(vecs[multi], axis=1, keepdims=True), 1e-12)
    out[found] = vecs
    return out, found


def subset(table: VectorTable, rids: np.ndarray) -> np.ndarray:
    """Row positions of those sorted chunk row ids that the table holds."""
    pos = table.positions(rids)
    inside = pos < len(table)
    pos = pos[inside]
    return np.asarray(pos[table.rids[pos] == rids[inside]], np.int64)
