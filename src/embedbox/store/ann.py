"""HNSW index (FAISS) over a collection's chunk vectors: derived data, never the truth.

The index is saved beside the database as `index.faiss` (the FAISS index, then the chunk row id
of each of its vectors) plus `index.json` recording the generation it reflects and the file's
checksum. Missing, stale, corrupt or unreadable -> brought up to date from the vector table
(small changes are applied in place, large ones rebuild).

FAISS's HNSW stores the float32 vectors themselves, so its scores are exact and need no
re-scoring. It cannot remove vectors: deleted rows stay in the graph and are masked out of
results by a selector until they are more than a fifth of it, then the index is rebuilt.
Filters use the same kind of selector, so a filtered search still returns the best allowed rows.

A plain `IndexHNSWFlat` labels vectors by insertion order; this class maps labels to chunk row
ids itself (FAISS's `IndexIDMap` would open an OpenMP region on every search to translate ten
labels). Chunk row ids are SQLite AUTOINCREMENT keys: never reused, and new rows always come
last, so labels and row ids ascend together.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.errors import require
from embedbox.store.vectors import VectorTable

_FORMAT = 2  # bump when the saved layout changes: older files are then rebuilt


def _faiss() -> Any:
    return require("faiss", "store", "the HNSW index")  # imported on first use


@dataclass(frozen=True)
class AnnOptions:
    """HNSW settings. `threshold`: at or below this many vectors search is exact (numpy).
    `connectivity` (HNSW M), `expansion_add` (efConstruction) and `expansion_search` (efSearch:
    the search beam, which sets recall against speed). `oversample`: candidate chunks asked for
    per wanted document when documents are split into chunks."""

    threshold: int = 20_000
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    oversample: int = 4


def new_hnsw(dim: int, options: AnnOptions) -> Any:
    """An empty FAISS HNSW index (inner product) with these settings."""
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(dim, options.connectivity, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = options.expansion_add
    index.hnsw.efSearch = options.expansion_search
    return index


class _Mask:
    """A FAISS selector of index labels, with the bitmap it points into kept alive."""

    def __init__(self, labels: np.ndarray, size: int) -> None:
        faiss = _faiss()
        bits = np.zeros(max(size, 1), np.bool_)
        bits[labels] = True
        self.bitmap = np.packbits(bits, bitorder="little")
        # FAISS takes the bitmap's length in bytes and treats labels past it as excluded.
        self.selector = faiss.IDSelectorBitmap(len(self.bitmap), faiss.swig_ptr(self.bitmap))


class ReadWriteLock:
    """Many readers at once or one writer. A waiting writer holds back new readers, so
    writers are not starved. `read()` and `write()` are context managers."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._waiting = 0
        # Plain objects, not @contextmanager generators: a search takes the read lock once
        # and a generator costs a few microseconds of a ~0.1 ms search.
        self._read = _Held(self._acquire_read, self._release_read)
        self._write = _Held(self._acquire_write, self._release_write)

    def read(self) -> _Held:
        return self._read

    def write(self) -> _Held:
        return self._write

    def _acquire_read(self) -> None:
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1

    def _release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def _acquire_write(self) -> None:
        with self._cond:
            self._waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writing = True

    def _release_write(self) -> None:
        with self._cond:
            self._writing = False
            self._cond.notify_all()


class _Held:
    """A context manager calling `acquire` on entry and `release` on exit."""

    def __init__(self, acquire: Callable[[], None], release: Callable[[], None]) -> None:
        self._acquire, self._release = acquire, release

    def __enter__(self) -> None:
        self._acquire()

    def __exit__(self, *exc: object) -> None:
        self._release()


class AnnIndex:
    """FAISS HNSW over chunk vectors; kept in step with a `VectorTable`."""

    def __init__(self, folder: Path, dim: int, options: AnnOptions) -> None:
        self.path = folder / "index.faiss"
        self.meta_path = folder / "index.json"
        self.dim, self.options = dim, options
        self.index: Any = None  # faiss.IndexHNSWFlat, inner product
        self.rids = np.zeros(0, np.int64)  # chunk row id of each label, live or deleted
        self.generation = -1
        # For the table synced to: the label of each of its rows, the row of each label (-1:
        # deleted) and the selector of live labels (None: all live).
        self.labels = np.zeros(0, np.int64)
        self.rows = np.zeros(0, np.int64)
        self.live: _Mask | None = None
        # Searches share the index (FAISS releases the GIL: two threads search at twice the
        # rate of one); bringing it to another generation, saving and loading are exclusive.
        self.lock = ReadWriteLock()
        self.rebuilds = 0  # full builds done by this process (tests and benchmarks read it)
        self.dirty = 0  # vectors added in memory but not yet saved
        self._masks: dict[int, tuple[np.ndarray, _Mask]] = {}

    @property
    def expansion(self) -> int:
        """The search beam width (HNSW efSearch)."""
        return int(self.index.hnsw.efSearch)

    @expansion.setter
    def expansion(self, ef: int) -> None:
        self.index.hnsw.efSearch = ef

    def _sync(self, table: VectorTable) -> None:
        """Make the index answer for exactly the table's rows (load, patch or rebuild)."""
        if self.index is not None and self.generation == table.generation:
            return
        if self.index is None:
            self._load()  # then checked row by row below: the file can be stale
        if self.index is None or not self._patch(table):
            self._build(table)
        self.labels = np.searchsorted(self.rids, table.rids)  # the index holds every row now
        self.rows = np.full(len(self.rids), -1, np.int64)
        self.rows[self.labels] = np.arange(len(table))
        whole = len(table) == len(self.rids)
        self.live = None if whole else _Mask(self.labels, len(self.rids))
        self._masks.clear()
        self.generation = table.generation

    def _load(self) -> None:
        faiss = _faiss()
        try:
            meta = json.loads(self.meta_path.read_text())
            data = self.path.read_bytes()
            if (meta.get("format"), meta.get("dim")) != (_FORMAT, self.dim):
                return
            if len(data) != meta["bytes"] or zlib.crc32(data) != meta["crc32"]:
                return  # damaged: FAISS could crash on it rather than raise
            cut = int(meta["faiss_bytes"])
            index = faiss.deserialize_index(np.frombuffer(data, np.uint8, count=cut))
            rids = np.frombuffer(data, np.int64, offset=cut).copy()
        except Exception:  # missing, truncated or unreadable: rebuilt from SQLite
            return
        if index.d != self.dim or len(rids) != index.ntotal or np.any(rids[1:] <= rids[:-1]):
            return
        self.index, self.rids = index, rids
        self.expansion = self.options.expansion_search

    def _patch(self, table: VectorTable) -> bool:
        """Add the table's new rows, unless the index has drifted too far (a fifth of it
        deleted) or lacks rows the table has; deleted rows are masked by `_sync`."""
        last = int(self.rids[-1]) if len(self.rids) else -1
        new = table.rids[table.rids > last]
        old = table.rids[: len(table) - len(new)]
        held = int(np.isin(self.rids, old, assume_unique=True).sum())
        if held != len(old) or len(self.rids) - held > max(1000, len(table) // 5):
            return False
        if len(new):
            self.index.add(table.matrix[len(old) :])
            self.rids = np.concatenate([self.rids, new])
            self.dirty += len(new)
        if self.dirty > max(1000, len(table) // 100):  # small patches are saved by flush()
            self._save()
        return True

    def _build(self, table: VectorTable) -> None:
        index = new_hnsw(self.dim, self.options)
        if len(table):
            index.add(table.matrix)
        self.index, self.rids = index, table.rids.copy()
        self.rebuilds += 1
        self._save()

    def flush(self) -> None:
        """Save in-memory changes (called on close)."""
        with self.lock.write():
            if self.index is not None and self.dirty:
                self._save()

    def _save(self) -> None:
        """Write the index then its metadata, each atomically (tmp file + rename)."""
        faiss = _faiss()
        self.dirty = 0
        data = faiss.serialize_index(self.index).tobytes() + self.rids.tobytes()
        suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
        tmp = self.path.with_name(self.path.name + suffix)
        tmp_meta = self.meta_path.with_name(self.meta_path.name + suffix)
        meta = {
            "format": _FORMAT,
            "generation": self.generation,
            "count": int(self.index.ntotal),
            "dim": self.dim,
            "faiss_bytes": len(data) - self.rids.nbytes,
            "bytes": len(data),
            "crc32": zlib.crc32(data),
        }
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
            tmp_meta.write_text(json.dumps(meta))
            os.replace(tmp_meta, self.meta_path)
        except OSError:  # read-only folder: the index still works from memory
            tmp.unlink(missing_ok=True)
            tmp_meta.unlink(missing_ok=True)

    def search(
        self, table: VectorTable, query: np.ndarray, count: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The table's best `count` rows (matrix positions) and their exact inner products,
        best first. `allowed`: sorted row positions a filter permits (None: all).

        An index at the table's generation or newer is searched under the shared lock (a newer
        one is searched for the table's rows only: a search that read the table just before a
        write never drags the index back). An older index is first brought up to the table
        under the exclusive lock. One query runs on the calling thread through FAISS's C++
        `search_c`."""
        q = np.ascontiguousarray(query, np.float32)
        with self.lock.read():
            if self.index is not None and self.generation >= table.generation:
                return self._search(table, q, count, allowed)
        with self.lock.write():
            if self.index is None or self.generation < table.generation:
                self._sync(table)
            return self._search(table, q, count, allowed)

    def _search(
        self, table: VectorTable, q: np.ndarray, count: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        current = self.generation == table.generation
        if current:
            mask = self.live if allowed is None else self._mask(allowed)
        else:  # a table older than the index: only its rows may come back
            rows = np.arange(len(table)) if allowed is None else allowed
            mask = _Mask(self._labels_of(table, rows), len(self.rids))
        params = None
        if mask is not None:
            params = faiss.SearchParametersHNSW(sel=mask.selector, efSearch=self.expansion)
        scores, labels = np.empty((1, count), np.float32), np.empty((1, count), np.int64)
        sp = faiss.swig_ptr
        self.index.search_c(1, sp(q), count, sp(scores), sp(labels), params)
        found = labels[0, : int(np.count_nonzero(labels[0] >= 0))]
        if current:
            return self.rows[found], scores[0, : len(found)]
        return table.positions(self.rids[found]), scores[0, : len(found)]

    def _labels_of(self, table: VectorTable, rows: np.ndarray) -> np.ndarray:
        """Labels of those of `table`'s rows that the index holds."""
        rids = table.rids[rows]
        labels = np.minimum(np.searchsorted(self.rids, rids), max(len(self.rids) - 1, 0))
        return labels[self.rids[labels] == rids] if len(self.rids) else labels[:0]

    def _mask(self, allowed: np.ndarray) -> _Mask:
        """The selector for a filter's rows. `FilterCache` hands out one array per filter and
        table generation, so selectors are cached by that array (held here: its id stays
        unique while cached) until the index moves to another generation. Concurrent searches
        may both build one; either is right."""
        cached = self._masks.get(id(allowed))
        if cached is not None and cached[0] is allowed:
            return cached[1]
        if len(self._masks) >= 16:
            self._masks.clear()
        mask = _Mask(self.labels[allowed], len(self.rids))
        self._masks[id(allowed)] = (allowed, mask)
        return mask

    def drop_files(self) -> None:
        for p in (self.path, self.meta_path):
            p.unlink(missing_ok=True)
