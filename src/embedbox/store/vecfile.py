"""The vector file: every chunk vector of a collection, stored once, at a fixed slot.

`vectors-<epoch>.bin` holds one row per slot at the collection's precision, in FAISS's own
flat-index format (`IndexFlatIP` for float32, an fp16 `IndexScalarQuantizer` for float16), so
FAISS memory-maps it as the storage of the HNSW graph and exact search reads the same pages
through numpy: one copy on disk, one in memory. The header's count is a capacity: the file grows
in steps and slots past the committed count are unused.

It is collection data, like `collection.db`, not a cache. SQLite records the slot of each chunk
and the number of committed slots (meta `slots`). A write transaction writes its vectors past the
committed end and flushes them to disk *before* the commit that references them, so a crash
(kill -9, power loss) leaves at most unreferenced bytes past the end, which the next writer
overwrites. Slots ascend with chunk row ids. Deleted chunks leave dead slots; once they are a
fifth of the file, `compact` copies the live rows into the next epoch's file in the same
transaction that renumbers the slots. Processes still reading the old file keep their mapping.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedbox.errors import StorageError

DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
}
_QT_FP16 = 4  # faiss.ScalarQuantizer.QT_fp16
_DUMMY = 1 << 20  # two fields FAISS writes and ignores
_BLOCK = 1 << 16  # rows copied at a time when compacting


def file_name(epoch: int) -> str:
    return f"vectors-{epoch}.bin"


def header(dim: int, capacity: int, precision: str) -> bytes:
    """FAISS's serialisation of an empty-but-sized flat index (checked against FAISS in tests)."""
    common = struct.pack("<iqqq?i", dim, capacity, _DUMMY, _DUMMY, True, 0)  # 0: inner product
    if precision == "float32":
        return b"IxFI" + common + struct.pack("<Q", capacity * dim)  # count of 4-byte words
    code = 2 * dim
    sq = struct.pack("<iifQQQ", _QT_FP16, 0, 0.0, dim, code, 0)  # no trained parameters
    return b"IxSQ" + common + sq + struct.pack("<Q", capacity * code)


@dataclass(frozen=True)
class Mapped:
    """The first `slots` rows of a vector file, memory-mapped read-only. `matrix` is the numpy
    view (float32 or float16); `flat` the FAISS flat index viewing the same pages, when FAISS is
    installed (the HNSW graph's storage); `file` the open file (for read-ahead hints)."""

    matrix: np.ndarray
    flat: Any = None
    file: Any = None

    def prefetch(self, slots: np.ndarray) -> None:
        """Ask the kernel to read these rows now, all at once (rows not in memory are then read
        in parallel, not one page fault after another)."""
        if self.file is None or not hasattr(os, "posix_fadvise") or not len(slots):
            return
        dim = self.matrix.shape[1]
        row = dim * self.matrix.dtype.itemsize
        head = len(header(dim, 0, "float32" if self.matrix.dtype == np.float32 else "float16"))
        fd = self.file.fileno()
        for slot in np.unique(slots).tolist():
            os.posix_fadvise(fd, head + slot * row, row, os.POSIX_FADV_WILLNEED)


def empty(dim: int, precision: str) -> Mapped:
    return Mapped(np.zeros((0, dim), DTYPES[precision]))


def open_mapped(path: Path, dim: int, precision: str, slots: int) -> Mapped:
    """Map the file for `slots` committed rows. A missing file raises `FileNotFoundError`; a
    short or foreign one is a `StorageError`. A header that a writer is growing right now (a torn
    read) is read again."""
    if slots == 0:
        return empty(dim, precision)
    dtype = DTYPES[precision]
    head = len(header(dim, 0, precision))
    need = slots * dim * dtype.itemsize
    faiss = _faiss_or_none()
    for _ in range(10):
        with open(path, "rb") as fh:
            capacity = _read_capacity(fh.read(head), dim, precision)
            size = os.fstat(fh.fileno()).st_size
        if capacity is None or capacity < slots or size < head + need:
            continue
        if faiss is None:
            mapped = np.memmap(path, dtype=dtype, mode="r", offset=head, shape=(slots, dim))
            return Mapped(np.asarray(mapped))
        try:
            flat = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
        except RuntimeError:
            continue
        if flat.codes.size() < need:
            continue
        raw = (ctypes.c_char * need).from_address(int(flat.codes.data()))
        raw._mapping = flat  # type: ignore[attr-defined]  # every view keeps the mapping alive
        matrix = np.frombuffer(raw, dtype).reshape(slots, dim)  # type: ignore[call-overload]
        matrix.flags.writeable = False  # the pages are mapped read-only
        flat.ntotal = slots
        return Mapped(matrix, flat, open(path, "rb"))  # closed with the mapping
    raise StorageError(
        f"the vector file {path} does not hold the collection's {slots} vectors (truncated or "
        "overwritten?); restore the collection folder from a backup",
        "damaged",
    )


def _read_capacity(start: bytes, dim: int, precision: str) -> int | None:
    """The capacity of a vector file from its first bytes; None unless the header is exactly
    what `header` writes for that capacity."""
    size = len(header(dim, 0, precision))
    if len(start) < size:
        return None
    capacity = int.from_bytes(start[8:16], "little", signed=True)
    if capacity < 0 or start[:size] != header(dim, capacity, precision):
        return None
    return capacity


def read_rows(path: Path, dim: int, precision: str, slots: list[int]) -> np.ndarray:
    """float32 rows at these slots, read without mapping the file (the embedding cache)."""
    dtype = DTYPES[precision]
    row = dim * dtype.itemsize
    head = len(header(dim, 0, precision))
    out = np.zeros((len(slots), dim), np.float32)
    with open(path, "rb") as fh:
        for i, slot in enumerate(slots):
            out[i] = np.frombuffer(os.pread(fh.fileno(), row, head + slot * row), dtype)
    return out


class Appender:
    """The vectors of one write transaction: `add` hands out slots, `flush` writes them after
    the committed end, grows the file when needed and syncs it to disk (call it before the
    commit)."""

    def __init__(self, path: Path, dim: int, precision: str, committed: int) -> None:
        self.path, self.dim, self.precision = path, dim, precision
        self.committed = committed
        self._parts: list[np.ndarray] = []
        self._count = 0

    @property
    def slots(self) -> int:
        """Committed slots plus those handed out so far."""
        return self.committed + self._count

    @property
    def pending(self) -> int:
        """Rows handed out but not yet written."""
        return self._count

    def add(self, vectors: np.ndarray) -> int:
        """Queue rows -> the slot of the first."""
        first = self.slots
        self._parts.append(np.ascontiguousarray(vectors, DTYPES[self.precision]))
        self._count += len(vectors)
        return first

    def flush(self) -> None:
        """Write the pending rows after the committed ones and sync the file; they then count
        as committed (for this transaction)."""
        if not self._count:
            return
        data = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        head = header(self.dim, 0, self.precision)
        row = self.dim * DTYPES[self.precision].itemsize
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                start = os.pread(fd, len(head), 0)
                capacity = _read_capacity(start, self.dim, self.precision) if start else 0
                if capacity is None or capacity < self.committed:
                    raise StorageError(
                        f"{self.path} is not an embedbox vector file of dim {self.dim}", "damaged"
                    )
                at = len(head) + self.committed * row
                _pwrite_all(fd, data.reshape(-1).data.cast("B"), at)
                if self.slots > capacity:  # grow by an eighth: few header rewrites
                    capacity = max(self.slots, capacity + capacity // 8, 1024)
                    os.ftruncate(fd, len(head) + capacity * row)
                    _pwrite_all(fd, header(self.dim, capacity, self.precision), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _write_error(exc, self.path) from exc
        self._parts.clear()
        self.committed, self._count = self.slots, 0


def compact(source: Mapped, live: np.ndarray, path: Path, dim: int, precision: str) -> None:
    """Write the rows at slots `live` (in that order: ascending when compacting) into a new
    file, synced to disk."""
    try:
        with open(path, "wb") as fh:
            fh.write(header(dim, len(live), precision))
            for at in range(0, len(live), _BLOCK):
                block = np.ascontiguousarray(source.matrix[live[at : at + _BLOCK]])
                fh.write(block.reshape(-1).data.cast("B"))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise _write_error(exc, path) from exc


def _pwrite_all(fd: int, data: memoryview | bytes, offset: int) -> None:
    view = memoryview(data)
    while view.nbytes:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _write_error(exc: OSError, path: Path) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageError(
            f"cannot write {path}: the disk is full; free some space and run the command "
            "again: what was committed is kept",
            "full",
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"cannot write {path}: it is read-only", "read_only")
    return StorageError(f"cannot write {path}: {exc.strerror}", "other")


def _faiss_or_none() -> Any:
    try:
        import faiss
    except ImportError:
        return None
    return faiss
