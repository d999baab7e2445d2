"""Derived files: named numpy arrays plus JSON metadata in one checksummed file.

Layout: 8 magic bytes, the header length (u64), the header (JSON: `meta`, and per array its
dtype, shape and offset), zero padding, then each array at a 64-byte aligned offset. The header
holds the CRC-32 of everything after it, so a torn, truncated or flipped file is never used.
Files are written to a temporary name and renamed into place: readers see the old file or the
new one, never a mix. Loading memory-maps the file (arrays are read-only views into it).
"""

from __future__ import annotations

import json
import mmap
import os
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"EBXPACK1"
ALIGN = 64


def save(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bool:
    """Write `meta` and `arrays` atomically -> False when the folder cannot be written (the
    caller keeps working from memory)."""
    layout: dict[str, list[Any]] = {}
    parts: list[memoryview | bytes] = []
    at, crc = 0, 0
    for name, arr in arrays.items():
        layout[name] = [arr.dtype.str, list(arr.shape), at]
        raw = np.ascontiguousarray(arr).reshape(-1).data.cast("B")
        parts += [raw, b"\0" * (_pad(raw.nbytes) - raw.nbytes)]
        for part in parts[-2:]:
            crc = zlib.crc32(part, crc)
        at += _pad(raw.nbytes)
    header = json.dumps({"meta": meta, "arrays": layout, "crc32": crc, "bytes": at}).encode()
    head = MAGIC + len(header).to_bytes(8, "little") + header
    head += b"\0" * (_pad(len(head)) - len(head))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(head)
            for part in parts:
                fh.write(part)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def load(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """(meta, arrays) of a sound file; None when it is missing, truncated or damaged."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 16:
                return None
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:
        if mm[:8] != MAGIC:
            return None
        length = int.from_bytes(mm[8:16], "little")
        header = json.loads(bytes(mm[16 : 16 + length]))
        start = _pad(16 + length)
        if start + int(header["bytes"]) != size:
            return None
        if zlib.crc32(memoryview(mm)[start:]) != header["crc32"]:
            return None
        arrays = {}
        for name, (dtype, shape, offset) in header["arrays"].items():
            count = int(np.prod(shape)) if shape else 1
            arr = np.frombuffer(mm, np.dtype(dtype), count=count, offset=start + offset)
            arrays[name] = arr.reshape(shape)
        return header["meta"], arrays
    except (ValueError, KeyError, TypeError):
        return None


def _pad(n: int) -> int:
    return -(-n // ALIGN) * ALIGN
