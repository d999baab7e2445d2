"""HNSW index (FAISS) over a collection's chunk vectors: derived data, never the truth.

The index is saved beside the database as `index.faiss` plus `index.json` recording the
generation it reflects and the file's checksum. Missing, stale, corrupt or unreadable -> brought
up to date from the vector table (small changes are applied in place, large ones rebuild).

FAISS's HNSW stores the float32 vectors themselves, so its scores are exact and need no
re-scoring. It cannot remove vectors: deleted rows stay in the graph and are masked out of
results by an id selector until they are more than a fifth of it, then the index is rebuilt.
Filters use the same selector, so a filtered search still returns the best allowed rows.
Chunk row ids are SQLite AUTOINCREMENT keys: never reused, and new rows always come last.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.store.vectors import VectorTable

_FORMAT = 1  # bump when the saved layout changes: older files are then rebuilt


def _faiss() -> Any:
    import faiss  # the `store` extra; imported on first use

    return faiss


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


class _Mask:
    """A FAISS id selector over chunk row ids, with the bitmap it points into kept alive."""

    def __init__(self, rids: np.ndarray) -> None:
        faiss = _faiss()
        bits = np.zeros(int(rids[-1]) + 1 if len(rids) else 1, np.bool_)
        bits[rids] = True
        self.bitmap = np.packbits(bits, bitorder="little")
        # FAISS takes the bitmap's length in bytes and treats ids past it as excluded.
        self.selector = faiss.IDSelectorBitmap(len(self.bitmap), faiss.swig_ptr(self.bitmap))


class AnnIndex:
    """FAISS HNSW keyed by chunk row id; kept in step with a `VectorTable`."""

    def __init__(self, folder: Path, dim: int, options: AnnOptions) -> None:
        self.path = folder / "index.faiss"
        self.meta_path = folder / "index.json"
        self.dim, self.options = dim, options
        self.index: Any = None  # faiss.IndexIDMap2 over an IndexHNSWFlat (inner product)
        self.rids = np.zeros(0, np.int64)  # row ids in the index, live or deleted, ascending
        self.generation = -1
        self.live: _Mask | None = None  # None: every row in the index is live
        self.lock = threading.Lock()
        self.rebuilds = 0  # full builds done by this process (tests and benchmarks read it)
        self.dirty = 0  # changes applied in memory but not yet saved
        self._out = (np.empty((1, 1), np.float32), np.empty((1, 1), np.int64))
        self._masks: dict[int, tuple[np.ndarray, _Mask]] = {}

    def _new(self) -> Any:
        faiss = _faiss()
        o = self.options
        hnsw = faiss.IndexHNSWFlat(self.dim, o.connectivity, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = o.expansion_add
        hnsw.hnsw.efSearch = o.expansion_search
        return faiss.IndexIDMap2(hnsw)

    @property
    def expansion(self) -> int:
        """The search beam width (HNSW efSearch)."""
        return int(self._hnsw.efSearch)

    @expansion.setter
    def expansion(self, ef: int) -> None:
        self._hnsw.efSearch = ef

    @property
    def _hnsw(self) -> Any:
        faiss = _faiss()
        return faiss.downcast_index(self.index.index).hnsw

    def _sync(self, table: VectorTable) -> None:
        """Make the index answer for exactly the table's rows (load, patch or rebuild)."""
        if self.index is not None and self.generation == table.generation:
            return
        if self.index is None:
            self._load()  # then checked row by row below: the file can be stale
        if self.index is None or not self._patch(table):
            self._build(table)
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
            index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
            rids = faiss.vector_to_array(index.id_map).astype(np.int64)
        except Exception:  # missing, truncated or unreadable: rebuilt from SQLite
            return
        if index.d != self.dim or len(rids) != index.ntotal or np.any(rids[1:] <= rids[:-1]):
            return
        self.index, self.rids = index, rids
        self.expansion = self.options.expansion_search

    def _patch(self, table: VectorTable) -> bool:
        """Add the table's new rows and mask its deleted ones, unless the index has drifted
        too far (a fifth of it deleted) or holds rows the table never had."""
        last = int(self.rids[-1]) if len(self.rids) else -1
        new = table.rids[table.rids > last]
        old = table.rids[: len(table) - len(new)]
        live = np.isin(self.rids, old, assume_unique=True)
        n_live = int(live.sum())
        if n_live != len(old) or len(self.rids) - n_live > max(1000, len(table) // 5):
            return False
        if len(new):
            self.index.add_with_ids(table.matrix[len(old) :], new)
            self.rids = np.concatenate([self.rids, new])
        self.live = None if len(self.rids) == len(table) else _Mask(table.rids)
        self.dirty += len(new) + len(self.rids) - len(table)
        if self.dirty > max(1000, len(table) // 100):  # small patches are saved by flush()
            self._save()
        return True

    def _build(self, table: VectorTable) -> None:
        index = self._new()
        if len(table):
            index.add_with_ids(table.matrix, table.rids)
        self.index, self.rids, self.live = index, table.rids.copy(), None
        self.rebuilds += 1
        self._save()

    def flush(self) -> None:
        """Save in-memory changes (called on close)."""
        with self.lock:
            if self.index is not None and self.dirty:
                self._save()

    def _save(self) -> None:
        """Write the index then its metadata, each atomically (tmp file + rename)."""
        faiss = _faiss()
        self.dirty = 0
        raw = faiss.serialize_index(self.index)
        suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
        tmp = self.path.with_name(self.path.name + suffix)
        tmp_meta = self.meta_path.with_name(self.meta_path.name + suffix)
        meta = {
            "format": _FORMAT,
            "generation": self.generation,
            "count": int(self.index.ntotal),
            "dim": self.dim,
            "bytes": len(raw),
            "crc32": zlib.crc32(memoryview(raw)),
        }
        try:
            raw.tofile(tmp)
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

        The index is first brought to the table's generation, under the same lock, so every
        row it returns is in `table`. One query runs on the calling thread through FAISS's C++
        `search_c` with reused output buffers."""
        faiss = _faiss()
        q = np.ascontiguousarray(query, np.float32)
        with self.lock:
            self._sync(table)
            mask = self.live if allowed is None else self._mask(table, allowed)
            params = None
            if mask is not None:
                params = faiss.SearchParametersHNSW(sel=mask.selector, efSearch=self.expansion)
            scores, keys = self._out
            if scores.shape[1] < count:
                scores, keys = np.empty((1, count), np.float32), np.empty((1, count), np.int64)
                self._out = scores, keys
            sp = faiss.swig_ptr
            self.index.search_c(1, sp(q), count, sp(scores), sp(keys), params)
            found = int(np.count_nonzero(keys[0, :count] >= 0))
            return table.positions(keys[0, :found]), scores[0, :found].copy()

    def _mask(self, table: VectorTable, allowed: np.ndarray) -> _Mask:
        """The selector for a filter's rows. `FilterCache` hands out one array per filter and
        table generation, so selectors are cached by that array (held here: its id stays
        unique while cached)."""
        cached = self._masks.get(id(allowed))
        if cached is not None and cached[0] is allowed:
            return cached[1]
        if len(self._masks) >= 16:
            self._masks.clear()
        mask = _Mask(table.rids[allowed])
        self._masks[id(allowed)] = (allowed, mask)
        return mask

    def drop_files(self) -> None:
        for p in (self.path, self.meta_path):
            p.unlink(missing_ok=True)
