"""Comparing vectors at the tolerance of the dtype they were computed in.

fp32 paths agree to float rounding, so they are compared element-wise. bf16 (and fp16) results
depend on how texts were batched, so two bf16 paths, or bf16 against fp32, agree only to the
precision of that dtype: compared by cosine, at the bar `compute="auto"` promises.
"""

from __future__ import annotations

import numpy as np
import torch

FP32_ATOL = 2e-5
LOW_PRECISION_MIN_COS = 0.999


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(1))


def assert_vectors_close(got: np.ndarray, want: np.ndarray, dtype: torch.dtype) -> None:
    """`got` equals `want` within what `dtype` (the lower-precision side's) allows."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shapes differ: {got.shape} vs {want.shape}"
    if dtype == torch.float32:
        np.testing.assert_allclose(got, want, atol=FP32_ATOL)
    else:
        worst = float(row_cosines(got, want).min())
        assert worst >= LOW_PRECISION_MIN_COS, f"{dtype}: min cosine {worst:.6f}"
