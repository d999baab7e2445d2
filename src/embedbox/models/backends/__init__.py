"""Inference backends under the text encoder.

Tokenisation, prompts, truncation and chunking, pooling, normalisation and Matryoshka stay in
one shared path (`TextEncoder`, `Embedder`); a backend only turns padded token batches into
token states. `torch` runs the transformers model; `openvino` runs it converted to OpenVINO IR
(fp32, bf16, or int8 behind a quality gate). `select.open_backend` picks one: as asked, by the
hardware rule, or by measurement (`backend="auto"`, see `autotune`).
"""

from __future__ import annotations

from embedbox.models.backends.base import Backend
from embedbox.models.backends.errors import BackendUnavailable

__all__ = ["Backend", "BackendUnavailable"]
