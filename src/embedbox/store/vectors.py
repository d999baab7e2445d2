"""The vector table of a collection: its chunks' row arrays beside the memory-mapped vectors.

Search needs, per chunk, its vector, its document and the document's id. The vectors stay in
the vector file (vecfile.py), mapped, never copied; the row arrays (chunk row id, document row
id, slot in the file, chunk number and span, document id) are read from SQLite and kept in step
with it by generation: rows added since are appended; after deletes only the (row id, slot)
pairs are read again. A fresh process loads them from `rows.bin`, a checksummed snapshot of the
arrays (derived data: rebuilt from SQLite when missing, stale or damaged), so opening a large
collection reads no rows at all.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.errors import StorageError
from embedbox.store import db, packed, vecfile
from embedbox.store import rows as sq

ROWS_FILE = "rows.bin"
_ROWS_FORMAT = 2


class IdColumn:
    """Document ids of the rows as one UTF-8 buffer and offsets: a few bytes per row instead
    of a Python string each, loaded from `rows.bin` without decoding."""

    def __init__(self, blob: np.ndarray | None = None, offsets: np.ndarray | None = None) -> None:
        self.blob = np.zeros(0, np.uint8) if blob is None else blob
        self.offsets = np.zeros(1, np.int64) if offsets is None else offsets
        self._raw = np.ascontiguousarray(self.blob).data.cast("B")

    @classmethod
    def of(cls, ids: list[str]) -> IdColumn:
        raw = [i.encode("utf-8", "surrogatepass") for i in ids]
        offsets = np.zeros(len(raw) + 1, np.int64)
        np.cumsum([len(r) for r in raw], out=offsets[1:])
        return cls(np.frombuffer(b"".join(raw), np.uint8), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> str:
        return self.many(np.array([row]))[0]

    def many(self, rows: np.ndarray) -> list[str]:
        """The ids of these rows (one vectorised look-up of their offsets)."""
        starts, ends = self.offsets[rows].tolist(), self.offsets[rows + 1].tolist()
        raw = self._raw
        return [str(raw[a:b], "utf-8", "surrogatepass") for a, b in zip(starts, ends, strict=True)]

    def take(self, rows: np.ndarray) -> IdColumn:
        starts, ends = self.offsets[:-1][rows], self.offsets[1:][rows]
        lengths = ends - starts
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        at = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - starts, lengths)
        return IdColumn(self.blob[at], offsets)

    @classmethod
    def join(cls, parts: list[IdColumn]) -> IdColumn:
        """One column of these columns' ids, in order (one copy)."""
        parts = [p for p in parts if len(p)] or parts[:1]
        if len(parts) == 1:
            return parts[0]
        base = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate(
            [parts[0].offsets[:1].astype(np.int64)]
            + [p.offsets[1:].astype(np.int64) + b for p, b in zip(parts, base, strict=True)]
        )
        return cls(np.concatenate([p.blob for p in parts]), offsets)


def _empty_rows() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class VectorTable:
    """One consistent, never-modified view of a collection's chunks. Per row (in chunk row id
    order): `rids`, `docs` (document row id), `slots` (row of `matrix`, the mapped vector file),
    `chunks` (chunk number, start, end, chunks in the document) and `ids` (document id).
    `matrix` has a row per slot, dead ones included; a refresh makes a new table, so a reader
    holding one never sees rows and vectors from different moments."""

    dim: int
    generation: int = -1
    delete_generation: int = -1
    epoch: int = 0
    rids: np.ndarray = field(default_factory=_empty_rows)
    docs: np.ndarray = field(default_factory=_empty_rows)
    slots: np.ndarray = field(default_factory=_empty_rows)
    chunks: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int32))
    ids: IdColumn = field(default_factory=IdColumn)
    vectors: vecfile.Mapped = field(default_factory=lambda: vecfile.empty(0, "float32"))
    one_chunk_per_doc: bool = True  # no document split into chunks: rows are documents

    def __len__(self) -> int:
        return len(self.rids)

    @property
    def matrix(self) -> np.ndarray:
        """Every slot's vector, (slots, dim), float32 or float16, read-only."""
        return self.vectors.matrix

    @property
    def n_slots(self) -> int:
        return len(self.vectors.matrix)

    @property
    def dense(self) -> bool:
        """Every slot is a row of this table (no dead slots): row i is slot i."""
        return len(self.rids) == self.n_slots

    def positions(self, rids: np.ndarray) -> np.ndarray:
        """Row positions of the given chunk row ids (all must be present)."""
        return np.searchsorted(self.rids, rids)

    def scores(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Exact inner products of `query` with the vectors of `rows` (positions; None: all)."""
        if rows is None and self.dense:
            return dot_all(self.matrix, query)
        return dot_rows(self.matrix, self.slots_of(rows), query)

    def slots_of(self, rows: np.ndarray | None) -> np.ndarray:
        """The matrix slots of `rows` (positions; None: all). Without dead slots a row's
        position is its slot: no gather (it costs a third of a wide filter's exact search)."""
        if rows is None:
            return self.slots
        return rows if self.dense else self.slots[rows]

    def top(
        self, query: np.ndarray, count: int, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `count` best of `rows` (positions; None: all) by exact inner product -> (positions,
        scores), best first. A heap in FAISS's kernel when it can; else numpy."""
        slots = None if rows is None and self.dense else self.slots_of(rows)
        count = min(count, self.n_slots if slots is None else len(slots))
        got = knn(self.matrix, slots, query, count)
        if got is not None:
            found, scores = got
            return (found if self.dense else np.searchsorted(self.slots, found)), scores
        scores = self.scores(query, rows)
        best = (
            np.argpartition(-scores, count - 1)[:count]
            if count < len(scores)
            else np.arange(len(scores))
        )
        best = best[np.argsort(-scores[best], kind="stable")]
        return (best if rows is None else rows[best]), scores[best]

    def rows_vectors(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of `rows` (positions), copied."""
        return np.asarray(self.matrix[self.slots[rows]], np.float32)


class _OneThread:
    """FAISS's kernels open an OpenMP region even for one query; on a busy machine waking the
    other threads costs milliseconds. The thread count is per calling thread, so this is
    safe while other threads search."""

    def __init__(self, faiss: Any) -> None:
        self.faiss = faiss

    def __enter__(self) -> None:
        self.prev = self.faiss.omp_get_max_threads()
        self.faiss.omp_set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        self.faiss.omp_set_num_threads(self.prev)


def dot_all(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """`matrix @ query` over a contiguous block (FAISS's kernel reads it unaligned, in place)."""
    faiss = vecfile._faiss_or_none()
    n, d = matrix.shape
    if faiss is None or matrix.dtype != np.float32 or not n:
        return np.asarray(matrix, np.float32) @ query
    q = np.ascontiguousarray(query, np.float32)
    out = np.empty(n, np.float32)
    with _OneThread(faiss):
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(q), _ptr(matrix), d, n)
    return out


def dot_rows(matrix: np.ndarray, slots: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner products of `query` with the given rows of `matrix`, without gathering them."""
    faiss = vecfile._faiss_or_none()
    if faiss is None or matrix.dtype != np.float32 or not len(slots):
        return np.asarray(matrix[slots], np.float32) @ query
    q = np.ascontiguousarray(query, np.float32)
    idx = np.ascontiguousarray(slots, np.int64)
    out = np.empty(len(idx), np.float32)
    sp = faiss.swig_ptr
    with _OneThread(faiss):
        faiss.fvec_inner_products_by_idx(
            sp(out), sp(q), _ptr(matrix), sp(idx), matrix.shape[1], 1, len(idx)
        )
    return out


def knn(
    matrix: np.ndarray, slots: np.ndarray | None, query: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The `count` best rows of `matrix` (or of its rows `slots`) -> (slots, scores), best
    first, through FAISS's heap; None when FAISS cannot (not installed, float16 rows)."""
    faiss = vecfile._faiss_or_none()
    if faiss is None or matrix.dtype != np.float32 or count < 1:
        return None
    q = np.ascontiguousarray(query, np.float32)
    vals, ids = np.empty(count, np.float32), np.empty(count, np.int64)
    sp, (n, d) = faiss.swig_ptr, matrix.shape
    with _OneThread(faiss):
        if slots is None:
            heap = faiss.float_minheap_array_t()
            heap.nh, heap.k, heap.val, heap.ids = 1, count, sp(vals), sp(ids)
            faiss.knn_inner_product(sp(q), _ptr(matrix), d, 1, n, heap)
        else:
            idx = np.ascontiguousarray(slots, np.int64)
            faiss.knn_inner_products_by_idx(
                sp(q), _ptr(matrix), sp(idx), d, 1, n, len(idx), count, sp(vals), sp(ids), 0
            )
    return ids, vals


def _ptr(matrix: np.ndarray) -> Any:
    """A float* to a C-contiguous float32 matrix (read-only and unaligned are fine)."""
    import faiss

    return faiss.swig_ptr(matrix)


class SharedTable:
    """The latest `VectorTable` of one collection, shared by its `Collection`s in a process."""

    def __init__(self, folder: Path, dim: int, precision: str) -> None:
        self.folder, self.dim, self.precision = folder, dim, precision
        self.table = VectorTable(dim, vectors=vecfile.empty(dim, precision))
        self.lock = threading.Lock()
        # What rows.bin holds, as far as this process knows: (generation, delete generation,
        # epoch, rows); None when unknown.
        self.saved: tuple[int, int, int, int] | None = None

    def refresh(self, conn: sqlite3.Connection) -> VectorTable:
        """The table at the database's current generation."""
        with self.lock:
            old = self.table
            if db.generations(conn)[0] == old.generation:
                return old
            for _ in range(5):
                try:
                    table = self._read(conn, old)
                    break
                except FileNotFoundError:  # compacted by another process meanwhile: re-read
                    old = VectorTable(self.dim, vectors=vecfile.empty(self.dim, self.precision))
            else:
                path = self.folder / vecfile.file_name(db.vector_state(conn)[0])
                raise StorageError(
                    f"the vector file {path} is missing: the collection's vectors are lost; "
                    "restore the collection folder from a backup",
                    "damaged",
                )
            self.table = table
            if self._stale(max(1000, len(table) // 10)):
                self.save()
            return table

    def _stale(self, rows: int) -> bool:
        """Whether rows.bin lags the table by more than `rows` added rows, or by any delete."""
        t = self.table
        if t.generation < 0:
            return False
        if self.saved is None:
            return True
        gen, del_gen, epoch, count = self.saved
        if gen >= t.generation:
            return False
        return (del_gen, epoch) != (t.delete_generation, t.epoch) or len(t) - count > rows

    def save(self, rows: int = 0) -> None:
        """Write the table's row arrays to rows.bin when it lags by more than `rows` (best
        effort: a read-only folder skips it)."""
        t = self.table
        if not self._stale(rows):
            return
        meta = {
            "format": _ROWS_FORMAT,
            "dim": t.dim,
            "generation": t.generation,
            "delete_generation": t.delete_generation,
            "epoch": t.epoch,
            "slots": t.n_slots,
        }
        dense = len(t) == t.n_slots  # slots 0, 1, ...: not stored
        arrays = {
            "rids": _narrow(t.rids),
            "docs": _narrow(t.docs),
            "slots": _narrow(t.slots[:0] if dense else t.slots),
            **{name: _narrow(t.chunks[:, i]) for i, name in enumerate(_CHUNK_COLUMNS)},
            "id_blob": t.ids.blob,
            "id_offsets": _narrow(t.ids.offsets),
        }
        meta["dense"] = dense
        if packed.save(self.folder / ROWS_FILE, meta, arrays):
            self.saved = (t.generation, t.delete_generation, t.epoch, len(t))

    def _cached(self, conn: sqlite3.Connection) -> VectorTable | None:
        """The table saved in rows.bin, if it belongs to this database and is not ahead of it."""
        got = packed.load(self.folder / ROWS_FILE)
        if got is None:
            return None
        meta, arr = got
        gen, _ = db.generations(conn)
        if meta.get("format") != _ROWS_FORMAT or meta.get("dim") != self.dim:
            return None
        if int(meta["generation"]) > gen:
            return None
        n = len(arr["rids"])
        gen, del_gen, epoch = (int(meta[k]) for k in ("generation", "delete_generation", "epoch"))
        self.saved = (gen, del_gen, epoch, n)
        # Searched with int64 keys: kept int64 (a narrow array would be converted per search).
        slots = np.arange(n, dtype=np.int64) if meta.get("dense") else arr["slots"].astype(np.int64)
        chunks = np.column_stack([arr[c] for c in _CHUNK_COLUMNS]).astype(np.int32)
        return VectorTable(
            self.dim,
            gen,
            del_gen,
            epoch,
            rids=arr["rids"].astype(np.int64),
            docs=arr["docs"],
            slots=slots,
            chunks=chunks.reshape(n, 4),
            ids=IdColumn(arr["id_blob"], arr["id_offsets"]),
            vectors=vecfile.empty(self.dim, self.precision),
        )

    def _read(self, conn: sqlite3.Connection, old: VectorTable) -> VectorTable:
        conn.execute("BEGIN")  # one read transaction: rows, slots and generation agree
        try:
            gen, del_gen = db.generations(conn)
            epoch, n_slots = db.vector_state(conn)
            base = old if old.generation >= 0 else self._cached(conn)
            if base is not None and base.generation > gen:
                base = None
            keep, slots = None, None
            if base is not None and len(base):
                last = int(base.rids[-1])
                if (base.delete_generation, base.epoch) != (del_gen, epoch):
                    pairs = sq.rid_slots(conn, last)  # rows deleted or slots moved since
                    keep = np.searchsorted(base.rids, pairs[:, 0])
                    slots = pairs[:, 1]
            else:
                last = 0
            new = [_columns(batch) for batch in sq.table_rows(conn, last)]  # bounded memory
        finally:
            conn.execute("COMMIT")
        if base is None:
            base = VectorTable(self.dim)
        if keep is not None and slots is not None:
            base = _take(base, keep, slots)
        same_file = base.epoch == epoch and old.n_slots == n_slots and old.epoch == epoch
        vectors = (
            old.vectors
            if same_file
            else vecfile.open_mapped(
                self.folder / vecfile.file_name(epoch), self.dim, self.precision, n_slots
            )
        )
        table = _extend(base, new, gen, del_gen, epoch, vectors)
        if len(table) and int(table.slots[-1]) >= n_slots:
            raise StorageError(
                f"collection {self.folder}: a chunk refers to slot {int(table.slots[-1])} of "
                f"{n_slots}; the database does not match its vector file",
                "damaged",
            )
        return table


_CHUNK_COLUMNS = ("chunk", "start", "end", "chunks")


def _narrow(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds them (rows.bin stays a
    few bytes a row; loading keeps the narrow arrays as they are)."""
    top = int(values.max()) if len(values) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.int64)


def _take(t: VectorTable, keep: np.ndarray, slots: np.ndarray) -> VectorTable:
    """The rows at positions `keep`, with new slots."""
    return VectorTable(
        t.dim,
        t.generation,
        t.delete_generation,
        t.epoch,
        rids=t.rids[keep],
        docs=t.docs[keep],
        slots=slots,
        chunks=t.chunks[keep],
        ids=t.ids.take(keep),
        vectors=t.vectors,
    )


Columns = tuple[np.ndarray, np.ndarray, IdColumn]  # (rid doc idx start end n_chunks), slots, ids


def _columns(rows: list[sq.TableRow]) -> Columns:
    """One batch of chunk rows as arrays."""
    cols = np.array([r[:6] for r in rows], np.int64)
    return cols, np.array([r[7] for r in rows], np.int64), IdColumn.of([r[6] for r in rows])


def _extend(
    t: VectorTable,
    new: list[Columns],
    gen: int,
    del_gen: int,
    epoch: int,
    vectors: vecfile.Mapped,
) -> VectorTable:
    """`t` with batches of rows appended, at this generation and vector file."""
    rids, docs, chunks, slots, ids = t.rids, t.docs, t.chunks, t.slots, t.ids
    if new:
        cols = np.concatenate([c for c, _, _ in new])
        rids = np.concatenate([rids, cols[:, 0]])
        docs = np.concatenate([docs, cols[:, 1]])
        chunks = np.concatenate([chunks, cols[:, 2:6].astype(np.int32)])
        slots = np.concatenate([slots, *(s for _, s, _ in new)])
        ids = IdColumn.join([ids, *(i for _, _, i in new)])
    return VectorTable(
        t.dim,
        gen,
        del_gen,
        epoch,
        rids=rids,
        docs=docs,
        slots=slots,
        chunks=chunks,
        ids=ids,
        vectors=vectors,
        one_chunk_per_doc=_all_distinct(docs),
    )


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
            shared = _TABLES[key] = SharedTable(Path(key), dim, precision)
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
    vecs = table.rows_vectors(s)
    multi = np.nonzero(c > 1)[0]
    for j in multi:
        vecs[j] = table.rows_vectors(np.arange(s[j], s[j] + c[j])).mean(axis=0)
    if normalize and len(multi):
        vecs[multi] /= np.maximum(np.linalg.norm(vecs[multi], axis=1, keepdims=True), 1e-12)
    out[found] = vecs
    return out, found
