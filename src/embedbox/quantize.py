"""Output precisions for embeddings, following sentence-transformers' `quantize_embeddings`.

float32 (exact), float16, int8 / uint8 (scalar quantisation calibrated per dimension) and
binary / ubinary (one bit per dimension, packed 8 to a byte).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from embedbox.errors import InputError

Precision = Literal["float32", "float16", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True)
class Int8Calibration:
    """Per-dimension value ranges mapped onto the 256 int8 levels."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, embeddings: np.ndarray) -> Int8Calibration:
        if embeddings.ndim != 2 or len(embeddings) < 2:
            raise InputError("int8 calibration needs a 2-D array of at least 2 embeddings")
        return cls(embeddings.min(0).astype(np.float32), embeddings.max(0).astype(np.float32))

    def steps(self) -> np.ndarray:
        return np.maximum(self.high - self.low, 1e-12) / 255.0


def check_precision(precision: str) -> Precision:
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]


def quantize(
    embeddings: np.ndarray, precision: str, calibration: Int8Calibration | None = None
) -> np.ndarray:
    """Convert float32 embeddings (n, d) to `precision`; int8 uses `calibration` (or fits on input)."""
    precision = check_precision(precision)
    emb = np.asarray(embeddings, dtype=np.float32)
    if precision == "float32":
        return emb
    if precision == "float16":
        return emb.astype(np.float16)
    if precision in ("int8", "uint8"):
        cal = calibration or Int8Calibration.fit(emb)
        levels = np.clip(np.floor((emb - cal.low) / cal.steps()), 0, 255)
        return (levels - 128).astype(np.int8) if precision == "int8" else levels.astype(np.uint8)
    packed = np.packbits(emb > 0, axis=-1)
    return (packed.astype(np.int16) - 128).astype(np.int8) if precision == "binary" else packed


def dequantize(
    values: np.ndarray, precision: str, calibration: Int8Calibration | None = None
) -> np.ndarray:
    """Approximate float32 vectors back (bits become +1/-1), for scoring quantised vectors."""
    precision = check_precision(precision)
    if precision in ("float32", "float16"):
        return values.astype(np.float32)
    if precision in ("int8", "uint8"):
        if calibration is None:
            raise InputError("dequantising int8 needs the calibration used to quantise")
        levels = values.astype(np.float32) + (128 if precision == "int8" else 0)
        return calibration.low + (levels + 0.5) * calibration.steps()
    raw = (values.astype(np.int16) + 128).astype(np.uint8) if precision == "binary" else values
    bits = np.unpackbits(raw.astype(np.uint8), axis=-1).astype(np.float32)
    return bits * 2 - 1


def hamming_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - normalised Hamming distance between packed bit vectors (m, b) x (n, b) -> (m, n)."""
    ua = np.asarray(a).view(np.uint8)
    ub = np.asarray(b).view(np.uint8)
    xor = np.bitwise_xor(ua[:, None, :], ub[None, :, :])
    dist = np.unpackbits(xor, axis=-1).sum(-1)
    return 1.0 - dist / (ua.shape[1] * 8)
