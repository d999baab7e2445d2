"""Type aliases shared across embedbox (one definition each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

Progress = Callable[[int, int], None]
"""`progress(done, total)`: called as work completes (total may grow for streamed input)."""

Compute = Literal["auto", "fp32", "bf16", "fp16", "int8"]
BackendName = Literal["auto", "torch", "openvino"]
InputType = Literal["query", "document"]
Mode = Literal["semantic", "keyword", "hybrid"]
Where = dict[str, Any]
"""A metadata filter, Chroma / MongoDB style (see `embedbox.store.filters`)."""
