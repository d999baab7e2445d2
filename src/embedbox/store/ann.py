"""ANN index (FAISS) over a collection's vector file: derived data, never the truth.

Two kinds, both labelled by *slot* (the row of the vector file), so a label needs no mapping:

- `hnsw` (the default): FAISS HNSW whose storage is the memory-mapped vector file itself, so
  the graph and exact search read one copy of the vectors. Its scores are exact.
- `ivf` (for collections larger than the memory they may use, see `AnnOptions.memory_limit`):
  an inverted file of product-quantised codes held in memory; each query's candidates are
  re-scored exactly from the vector file, which stays on disk.

The index is saved beside the database as `index.faiss` (the graph or the IVF codes, never the
vectors), stamped with the vector file epoch and generation it reflects and checksummed; missing,
stale, corrupt or unreadable -> brought up to date from the vector table. Rows added since the
index was built are searched exactly (the "tail") until there are enough to add them in one go.
Deleted rows stay in the index and are masked out of results by a FAISS selector until the
vector file is compacted (new epoch), which rebuilds the index. Filters use the same selector;
a filtered HNSW search widens its beam for the filter's selectivity.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.errors import InputError, require
from embedbox.store import packed
from embedbox.store.vectors import VectorTable, _OneThread, dot_rows

_FORMAT = 3  # bump when the saved layout changes: older files are then rebuilt
KINDS = ("auto", "hnsw", "ivf")


def _faiss() -> Any:
    return require("faiss", "store", "the ANN index")  # imported on first use


@dataclass(frozen=True)
class AnnOptions:
    """Index settings. `threshold`: at or below this many vectors search is exact.

    HNSW: `connectivity` (M), `expansion_add` (efConstruction) and `expansion_search` (efSearch:
    the search beam, which sets recall against speed). `oversample`: candidate chunks asked for
    per wanted document when documents are split into chunks.

    `kind`: "hnsw", "ivf" or "auto" (HNSW, unless it would need more than `memory_limit` bytes
    of memory: the vectors and the graph). `memory_limit`: bytes the index may keep resident
    (None: half of the machine's memory, or of the cgroup's limit when lower); IVF keeps about
    `code_bytes` + 8 per vector and the vectors stay on disk. IVF: `lists`
    (0: 2 sqrt(n)), `probes` (lists searched per query), `code_bytes` (product-quantiser bytes
    per vector; 0: about dim / 8, at least 8) and `rerank` (candidates re-scored exactly from
    the vector file per wanted hit)."""

    threshold: int = 20_000
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    oversample: int = 4
    kind: str = "auto"
    memory_limit: int | None = None
    lists: int = 0
    probes: int = 64
    code_bytes: int = 0
    rerank: int = 20

    def check(self) -> None:
        if self.kind not in KINDS:
            raise InputError(
                f"AnnOptions.kind must be one of {', '.join(KINDS)}, not {self.kind!r}"
            )
        if self.memory_limit is not None and self.memory_limit <= 0:
            raise InputError(
                f"AnnOptions.memory_limit must be positive bytes, got {self.memory_limit}"
            )

    def kind_for(self, slots: int, dim: int, itemsize: int) -> str:
        """The index kind to build for this many vectors: "auto" is HNSW unless it needs more
        than `memory_limit` (None: half the memory this process may use)."""
        if self.kind != "auto":
            return self.kind
        limit = self.memory_limit if self.memory_limit is not None else memory_budget()
        return "ivf" if hnsw_bytes(slots, dim, itemsize, self) > limit else "hnsw"


def memory_budget() -> int:
    """Half of the memory this process may use: the machine's RAM, or less when its cgroup
    (a container, `systemd-run -p MemoryMax=`) caps it."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # cgroup v2
                f = Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max"
            elif "memory" in controllers.split(","):
                f = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes"
            else:
                continue
            text = f.read_text().strip() if f.exists() else "max"
            if text.isdigit():
                limits.append(int(text))
    except (OSError, ValueError):
        pass
    return min(limits) // 2


def hnsw_bytes(slots: int, dim: int, itemsize: int, options: AnnOptions) -> int:
    """Memory an HNSW search needs resident: the vectors and the graph (levels, offsets and
    about 2M + M/(M-1) neighbour ids per node)."""
    m = options.connectivity
    return slots * (dim * itemsize + 4 * (2 * m + 2) + 12)


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


@dataclass(frozen=True)
class _View:
    """How the index answers for one table: `rows[label]` is the table row of a graph label
    (-1: not in the table), `mask` selects those labels (None: all of them), `tail` are the
    table's rows past the index, searched exactly."""

    rows: np.ndarray
    mask: _Mask | None
    tail: np.ndarray
    cut: int  # table rows [0, cut) are in the index


class AnnIndex:
    """A FAISS index over a collection's slots, kept in step with its `VectorTable`."""

    def __init__(self, folder: Path, dim: int, options: AnnOptions) -> None:
        self.path = folder / "index.faiss"
        self.dim, self.options = dim, options
        self.index: Any = None  # faiss.IndexHNSWFlat or faiss.IndexIVFPQ, inner product
        self.kind = ""
        self.epoch = -1  # vector file epoch the labels refer to
        self.generation = -1  # of the table synced to
        self.view = _View(np.zeros(0, np.int64), None, np.zeros(0, np.int64), 0)
        # Searches share the index (FAISS releases the GIL: two threads search at twice the
        # rate of one); bringing it to another generation, saving and loading are exclusive.
        self.lock = ReadWriteLock()
        self.rebuilds = 0  # full builds done by this process (tests and benchmarks read it)
        self.dirty = 0  # vectors added in memory but not yet saved
        self._storage: Any = None  # the mapped vectors the HNSW graph reads (kept alive)
        self._masks: dict[int, tuple[np.ndarray, _Mask]] = {}
        self._efforts = {"hnsw": options.expansion_search, "ivf": options.probes}

    @property
    def expansion(self) -> int:
        """The search effort: HNSW efSearch, or the IVF lists probed per query."""
        return self._efforts[self.kind or "hnsw"]

    @expansion.setter
    def expansion(self, effort: int) -> None:
        self._efforts[self.kind or "hnsw"] = int(effort)
        if self.index is not None and self.kind == "hnsw":
            self.index.hnsw.efSearch = int(effort)

    @property
    def size(self) -> int:
        """Slots the index holds."""
        return int(self.index.ntotal) if self.index is not None else 0

    # ---- keeping in step ----------------------------------------------------------------
    def _sync(self, table: VectorTable) -> None:
        """Make the index answer for exactly the table's rows (load, patch or rebuild)."""
        if self.index is not None and self.generation == table.generation:
            return
        if self.index is None or self.epoch != table.epoch:
            self._load(table)
        if self.index is None or self.epoch != table.epoch or self.size > table.n_slots:
            self._build(table)
        if table.n_slots - self.size > max(1000, table.n_slots // 50):
            self._patch(table)
        if self.kind == "hnsw":
            self._attach(table)
        self.view = self._view_of(table)
        self._masks.clear()
        self.generation = table.generation

    def _attach(self, table: VectorTable) -> None:
        """Point the HNSW graph at the table's mapped vector file (no copy)."""
        flat = table.vectors.flat
        if flat is None:  # FAISS was missing when the file was mapped
            raise RuntimeError("the vector file is not mapped through FAISS")
        self.index.storage = flat
        self._storage = table.vectors

    def _view_of(self, table: VectorTable) -> _View:
        cut = int(np.searchsorted(table.slots, self.size))
        rows = np.full(self.size, -1, np.int64)
        rows[table.slots[:cut]] = np.arange(cut)
        mask = None if cut == self.size else _Mask(table.slots[:cut], self.size)
        return _View(rows, mask, np.arange(cut, len(table)), cut)

    def _load(self, table: VectorTable) -> None:
        faiss = _faiss()
        self.index = None
        got = packed.load(self.path)
        if got is None:  # missing, truncated or damaged: rebuilt from the vector table
            return
        meta, arrays = got
        want = {"format": _FORMAT, "dim": self.dim, "epoch": table.epoch}
        if any(meta.get(k) != v for k, v in want.items()) or not self._fits(meta, table):
            return
        try:
            flags = faiss.IO_FLAG_SKIP_STORAGE if meta["kind"] == "hnsw" else 0
            index = faiss.read_index(_reader(arrays["faiss"]), flags)
        except Exception:  # unreadable: rebuilt
            return
        if index.d != self.dim or index.ntotal != meta["slots"]:
            return
        self.index, self.kind, self.epoch = index, str(meta["kind"]), int(meta["epoch"])
        self._prepare()

    def _fits(self, meta: dict[str, Any], table: VectorTable) -> bool:
        """Whether a saved index is one these options would build: the same kind (any kind
        when left to "auto" without a memory limit, so a collection indexed as IVF reopens as
        IVF) and the same structure settings."""
        kind, o = meta.get("kind"), self.options
        if kind not in ("hnsw", "ivf"):
            return False
        if o.kind != "auto" or o.memory_limit is not None:
            itemsize = table.matrix.dtype.itemsize
            if kind != o.kind_for(table.n_slots, self.dim, itemsize):
                return False
        saved = meta.get("options", {})
        keys = ("connectivity",) if kind == "hnsw" else ("lists", "code_bytes")
        return all(saved.get(k) == getattr(o, k) for k in keys)

    def _prepare(self) -> None:
        if self.kind == "hnsw":
            self.index.own_fields = False  # the storage is the mapped file, owned elsewhere
            self.index.hnsw.efSearch = self._efforts["hnsw"]

    def _build(self, table: VectorTable) -> None:
        itemsize = table.matrix.dtype.itemsize
        self.kind = self.options.kind_for(table.n_slots, self.dim, itemsize)
        if self.kind == "hnsw":
            index = new_hnsw(self.dim, self.options)
            if table.n_slots:
                index.add(np.asarray(table.matrix, np.float32))  # a transient owned copy
        else:
            index = _new_ivf(table, self.options)
            _add_ivf(index, table, 0)
        self.index, self.epoch = index, table.epoch
        self._prepare()
        self.rebuilds += 1
        self._save()

    def _patch(self, table: VectorTable) -> None:
        """Add the slots past the index. HNSW inserts need every vector through the storage,
        which FAISS cannot grow while it views the mapped file: a transient owned copy."""
        start = self.size
        if self.kind == "hnsw":
            faiss = _faiss()
            owned = faiss.IndexFlatIP(self.dim)
            owned.add(np.asarray(table.matrix[:start], np.float32))
            self.index.storage = owned
            self.index.add(np.asarray(table.matrix[start:], np.float32))
            self._attach(table)
            del owned
        else:
            _add_ivf(self.index, table, start)
        self.dirty += table.n_slots - start
        if self.dirty > max(1000, table.n_slots // 100):  # small patches are saved by flush()
            self._save()

    def flush(self) -> None:
        """Save in-memory changes (called on close)."""
        with self.lock.write():
            if self.index is not None and self.dirty:
                self._save()

    def _save(self) -> None:
        """Write the index (never the vectors), checksummed, replacing the old file atomically;
        a read-only folder keeps it in memory only."""
        faiss = _faiss()
        self.dirty = 0
        writer = faiss.VectorIOWriter()
        faiss.write_index(
            self.index, writer, faiss.IO_FLAG_SKIP_STORAGE if self.kind == "hnsw" else 0
        )
        meta = {
            "format": _FORMAT,
            "kind": self.kind,
            "dim": self.dim,
            "epoch": self.epoch,
            "slots": self.size,
            "options": _signature(self.options),
        }
        packed.save(self.path, meta, {"faiss": faiss.vector_to_array(writer.data)})

    # ---- searching ----------------------------------------------------------------------
    def effort_for(self, selectivity: float, count: int) -> int:
        """The search effort for a filter passing `selectivity` of the rows: HNSW widens its
        beam by 1/sqrt(selectivity) (its result list must hold `count` passing rows), IVF
        probes more lists by the same factor."""
        effort = self.expansion
        base = effort if self.kind == "ivf" else max(effort, count)
        if selectivity >= 1.0:
            return base
        return int(min(base / math.sqrt(max(selectivity, 1e-6)), 16 * base, 4096))

    def cost(self, selectivity: float, count: int) -> float:
        """Rough cost of one search, in vectors scored exactly: an HNSW beam step costs about
        as much as scoring `hnsw_step(dim)` vectors exactly; IVF re-scores `rerank` candidates
        per hit from disk, each worth `_DISK_READ` exact scores."""
        effort = self.effort_for(selectivity, count)
        if self.kind == "ivf":
            return count * self.options.rerank * _DISK_READ
        return effort * hnsw_step(self.dim)

    def search(
        self, table: VectorTable, query: np.ndarray, count: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The table's best `count` rows (positions) and their exact inner products, best
        first. `allowed`: sorted row positions a filter permits (None: all). None when the
        index cannot answer for this table (its vector file was compacted since).

        An index at the table's generation or newer is searched under the shared lock (a newer
        one is searched for the table's rows only: a search that read the table just before a
        write never drags the index back). An older index is first brought up to the table
        under the exclusive lock. One query runs on the calling thread."""
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
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if self.epoch != table.epoch:
            return None
        view = self.view if self.generation == table.generation else self._view_of(table)
        if allowed is None:
            mask, tail, inside, selectivity = view.mask, view.tail, view.cut, 1.0
        else:
            inside = int(np.searchsorted(allowed, view.cut))
            mask = self._mask(table, allowed, inside, view) if inside else None
            tail, selectivity = allowed[inside:], len(allowed) / max(len(table), 1)
        labels, scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        if inside:
            effort = self.effort_for(selectivity, count)
            if self.kind == "hnsw":
                labels, scores = self._hnsw(q, count, mask, effort)
            else:
                labels, scores = self._ivf(table, q, count, mask, effort)
        rows = view.rows[labels]
        if len(tail):  # rows added since the index was built: scored exactly
            rows = np.concatenate([rows, tail])
            scores = np.concatenate([scores, table.scores(q, tail)])
            best = np.argsort(-scores, kind="stable")[:count]
            rows, scores = rows[best], scores[best]
        return rows, scores

    def _hnsw(
        self, q: np.ndarray, count: int, mask: _Mask | None, effort: int
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        params = None
        if mask is not None or effort != self.index.hnsw.efSearch:
            params = faiss.SearchParametersHNSW(efSearch=effort)
            if mask is not None:
                params.sel = mask.selector
        scores, labels = np.empty((1, count), np.float32), np.empty((1, count), np.int64)
        sp = faiss.swig_ptr
        self.index.search_c(1, sp(q), count, sp(scores), sp(labels), params)
        found = int(np.count_nonzero(labels[0] >= 0))
        return labels[0, :found], scores[0, :found]

    def _ivf(
        self, table: VectorTable, q: np.ndarray, count: int, mask: _Mask | None, effort: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """IVF candidates, re-scored exactly from the vector file."""
        faiss = _faiss()
        params = faiss.SearchParametersIVF(nprobe=min(effort, self.index.nlist))
        if mask is not None:
            params.sel = mask.selector
        want = count * self.options.rerank
        scores, labels = np.empty((1, want), np.float32), np.empty((1, want), np.int64)
        sp = faiss.swig_ptr
        with _OneThread(faiss):  # the coarse quantizer's scan would open an OpenMP region
            self.index.search_c(1, sp(q), want, sp(scores), sp(labels), params)
        cand = np.sort(labels[0][labels[0] >= 0])  # read the file in order
        table.vectors.prefetch(cand)  # the vectors are on disk: read them in parallel
        exact = dot_rows(table.matrix, cand, q)
        best = np.argsort(-exact, kind="stable")[:count]
        return cand[best], exact[best]

    def _mask(self, table: VectorTable, allowed: np.ndarray, inside: int, view: _View) -> _Mask:
        """The selector for a filter's rows inside the index. `FilterCache` hands out one array
        per filter and table generation, so selectors are cached by that array (held here: its
        id stays unique while cached) until the index moves to another generation. Concurrent
        searches may both build one; either is right."""
        current = view is self.view
        cached = self._masks.get(id(allowed))
        if current and cached is not None and cached[0] is allowed:
            return cached[1]
        mask = _Mask(table.slots[allowed[:inside]], self.size)
        if current:
            if len(self._masks) >= 16:
                self._masks.clear()
            self._masks[id(allowed)] = (allowed, mask)
        return mask

    def drop_files(self) -> None:
        self.path.unlink(missing_ok=True)


def hnsw_step(dim: int) -> float:
    """The cost of one HNSW beam step (efSearch 1), in exact scores of `dim`-float vectors. A
    step is mostly random reads of neighbours, which cost about the same at any width; an exact
    score is a sequential read that grows with `dim` (FAISS, M 16, one thread: 1.5 us a step
    against 7.4 ns a row at 50 dims, 185 rows; 2.8 us against 64 ns at 384, 44)."""
    return 25 + 7500 / max(dim, 1)


# A vector read from disk for IVF re-scoring costs this many in-memory exact scores.
_DISK_READ = 200


def _reader(data: np.ndarray) -> Any:
    """A FAISS reader over the mapped file's bytes, a slice at a time: a copy of the whole
    serialised index beside the index being built from it would double the peak memory."""
    view = data.view(np.uint8).reshape(-1).data
    at = 0

    def read(size: int) -> bytes:
        nonlocal at
        chunk = bytes(view[at : at + size])
        at += len(chunk)
        return chunk

    return _faiss().PyCallbackIOReader(read)


def _signature(options: AnnOptions) -> dict[str, Any]:
    """The build settings saved with an index (search-time settings may change freely)."""
    keep = ("connectivity", "expansion_add", "lists", "code_bytes")
    return {k: v for k, v in asdict(options).items() if k in keep}


def _new_ivf(table: VectorTable, options: AnnOptions) -> Any:
    """An IVF-PQ index trained on a sample of the table's vectors."""
    faiss = _faiss()
    n, d = table.n_slots, table.dim
    lists = options.lists or int(min(65536, max(16, 2 * math.sqrt(max(n, 1)))))
    lists = max(1, min(lists, n // 39 or 1))
    code = options.code_bytes or max(8, d // 8)
    while d % code:  # the quantiser splits the vector into `code` equal parts
        code -= 1
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFPQ(quantizer, d, lists, code, 8, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    quantizer.this.disown()
    index.cp.niter = 10  # k-means iterations: FAISS's 25 buy little recall for 2.5x the time
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, size=min(n, max(40 * lists, 20_000)), replace=False))
    index.train(np.asarray(table.matrix[sample], np.float32))
    return index


def _add_ivf(index: Any, table: VectorTable, start: int) -> None:
    """Add slots [start, end) in blocks read from the mapped file (bounded memory)."""
    block = 65_536
    for at in range(start, table.n_slots, block):
        end = min(at + block, table.n_slots)
        index.add_with_ids(
            np.asarray(table.matrix[at:end], np.float32), np.arange(at, end, dtype=np.int64)
        )
