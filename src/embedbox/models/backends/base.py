"""What every backend offers: padded token batches in, float32 token states out."""

from __future__ import annotations

from typing import Protocol

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
