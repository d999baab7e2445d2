"""HNSW index (usearch) over a collection's chunk vectors: derived data, never the truth.

The index is saved beside the database as `index.usearch` plus `index.json` recording the
generation it reflects. Missing, stale or unreadable -> brought up to date from the vector
table (small changes are applied in place, large ones rebuild). Searches oversample and the
caller re-scores candidates exactly against the float32 matrix.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.store.vectors import VectorTable


@dataclass(frozen=True)
class AnnOptions:
    """HNSW settings. `threshold`: below this many vectors search is exact (numpy)."""

    threshold: int = 20_000
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 96
    oversample: int = 4
    dtype: str = "f32"


class AnnIndex:
    """usearch HNSW keyed by chunk row id; kept in step with a `VectorTable`."""

    def __init__(self, folder: Path, dim: int, metric: str, options: AnnOptions) -> None:
        self.path = folder / "index.usearch"
        self.meta_path = folder / "index.json"
        self.dim, self.metric, self.options = dim, metric, options
        self.index: Any = None
        self.generation = -1
        self.lock = threading.Lock()
        self.rebuilds = 0  # full builds done by this process (tests and benchmarks read it)
        self.dirty = 0  # changes applied in memory but not yet saved

    def _new(self) -> Any:
        from usearch.index import Index

        o = self.options
        return Index(
            ndim=self.dim,
            metric=self.metric,
            dtype=o.dtype,
            connectivity=o.connectivity,
            expansion_add=o.expansion_add,
            expansion_search=o.expansion_search,
        )

    def sync(self, table: VectorTable) -> None:
        """Make the index hold exactly the table's rows (load, patch or rebuild)."""
        with self.lock:
            if self.index is not None and self.generation == table.generation:
                return
            if self.index is None:
                self._load(table)  # then verified key by key below: files can be stale
            if self.index is not None and self._patch(table):
                self.generation = table.generation
                return
            self._build(table)

    def _load(self, table: VectorTable) -> None:
        try:
            meta = json.loads(self.meta_path.read_text())
            if meta.get("dim") != self.dim or meta.get("metric") != self.metric:
                return
            index = self._new()
            index.load(str(self.path))
            if index.ndim != self.dim or len(index) != int(meta["count"]):
                return
        except Exception:  # missing, truncated or corrupt: rebuilt from SQLite
            return
        index.expansion_search = self.options.expansion_search
        self.index = index

    def _patch(self, table: VectorTable) -> bool:
        """Apply inserts/removals in place when they are a small part of the index."""
        have = np.asarray(self.index.keys, dtype=np.int64)
        stale = np.setdiff1d(have, table.rids, assume_unique=True)
        new = np.setdiff1d(table.rids, have, assume_unique=True)
        if len(stale) + len(new) > max(1000, len(table) // 5):
            return False
        if len(stale):
            self.index.remove(stale.astype(np.uint64))
        if len(new):
            pos = table.positions(new)
            self.index.add(new.astype(np.uint64), table.matrix[pos])
        if len(self.index) != len(table):
            return False
        self.dirty += len(stale) + len(new)
        if self.dirty > max(1000, len(table) // 100):  # small patches are saved by flush()
            self._save()
        return True

    def _build(self, table: VectorTable) -> None:
        index = self._new()
        if len(table):
            index.add(table.rids.astype(np.uint64), table.matrix)
        self.index, self.generation = index, table.generation
        self.rebuilds += 1
        self._save()

    def flush(self) -> None:
        """Save in-memory changes (called on close)."""
        with self.lock:
            if self.index is not None and self.dirty:
                self._save()

    def _save(self) -> None:
        """Write index then its metadata, each atomically (tmp file + rename)."""
        self.dirty = 0
        suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
        tmp = self.path.with_name(self.path.name + suffix)
        try:
            self.index.save(str(tmp))
            os.replace(tmp, self.path)
            meta = {
                "generation": self.generation,
                "count": len(self.index),
                "dim": self.dim,
                "metric": self.metric,
            }
            tmp_meta = self.meta_path.with_name(self.meta_path.name + suffix)
            tmp_meta.write_text(json.dumps(meta))
            os.replace(tmp_meta, self.meta_path)
        except OSError:  # read-only folder: the index still works from memory
            tmp.unlink(missing_ok=True)

    def search(self, query: np.ndarray, count: int) -> np.ndarray:
        """Candidate chunk row ids, best first. One query runs on the calling thread
        (`threads=1`: no pool hand-off) through usearch's compiled `search_many` when present
        (its Python wrapper costs ~20 us a call), else through `Index.search`."""
        q = np.ascontiguousarray(query, np.float32).reshape(1, -1)
        with self.lock:
            count = min(count, self.index.size)
            if count <= 0:
                return np.zeros(0, np.int64)
            if self._direct is not None:
                keys, _, counts, *_ = self._direct(q, count=count, exact=False, threads=1)
                return keys[0, : counts[0]].astype(np.int64)
            matches = self.index.search(q[0], count, threads=1, exact=False)
        return np.asarray(matches.keys, dtype=np.int64)

    @property
    def expansion(self) -> int:
        """The search beam width (usearch `expansion_search`)."""
        return int(self.index.expansion_search)

    @property
    def _direct(self) -> Any:
        return getattr(getattr(self.index, "_compiled", None), "search_many", None)

    def drop_files(self) -> None:
        for p in (self.path, self.meta_path):
            p.unlink(missing_ok=True)
