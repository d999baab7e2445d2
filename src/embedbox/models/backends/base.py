"""What every backend offers: padded token batches in, float32 token states out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch


class Backend(Protocol):
    """Runs one transformer. `name` is torch | openvino; `compute` is fp32 | bf16 | fp16 | int8."""

    name: str
    compute: str
    device: torch.device

    def token_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states (n, t, d) as float32 for padded `input_ids` / `attention_mask`
        (and `token_type_ids` where the model takes them), on the CPU or the model's device."""
        ...

    def set_adapter(self, name: str) -> None:
        """Make a task adapter active (torch only; others raise)."""
        ...


class ModelInfo(Protocol):
    """What choosing and converting a backend reads of a model (`models.text.TextModelInfo`)."""

    @property
    def path(self) -> Path: ...
    @property
    def architecture(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def format(self) -> str: ...


class Encoder(Protocol):
    """The tokenising side a backend is built and measured for (`models.text.TextEncoder`):
    kept as a protocol so the backend layer never imports the text layer above it."""

    @property
    def info(self) -> ModelInfo: ...
    @property
    def adapters(self) -> dict[str, Path]: ...

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]: ...

    def truncate(self, ids: list[int], max_tokens: int) -> list[int]: ...

    def inputs(self, batch: Sequence[list[int]]) -> dict[str, torch.Tensor]: ...

    def embed_batch(
        self, batch: Sequence[list[int]], prompt_tokens: int = 0, backend: Backend | None = None
    ) -> np.ndarray: ...
