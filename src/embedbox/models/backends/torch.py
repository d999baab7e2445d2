"""The PyTorch backend: the transformers model run eagerly (or through `torch.compile`)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from embedbox.errors import InputError, ModelNotFound


def load_model(path: Path, dtype: torch.dtype) -> Any:
    """The transformers model in `path` (local files only), SDPA attention where it has one."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # length warnings are reported by embedbox itself
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        attention = attention_implementation(path)
        return AutoModel.from_pretrained(
            str(path), local_files_only=True, dtype=dtype, attn_implementation=attention
        )
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f"cannot load the model in {path}: {exc}") from exc


def attention_implementation(path: Path) -> str:
    """ "sdpa" where the architecture's transformers class implements it, else "eager" (MPNet
    has no SDPA path): read from the class's declared support, not by trying and failing."""
    from transformers import MODEL_MAPPING, AutoConfig

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    model_class = MODEL_MAPPING.get(type(config), None)
    return "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager"


class TorchBackend:
    """Runs a loaded transformers model; `compile=True` wraps it in `torch.compile`.

    `compiled` says whether forwards still go through the compiled graph (False again after the
    compiler failed and it fell back to eager).
    """

    name = "torch"

    def __init__(self, model: Any, device: torch.device, compile: bool = False) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.dtype: torch.dtype = next(self.model.parameters()).dtype
        self.compute = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
            self.dtype, str(self.dtype)
        )
        self._forward: Any = self.model
        self.compiled = False
        if compile:
            # Dynamic shapes: one graph serves every batch size and length (a batch of one is
            # padded to two rows, since dynamo specialises sizes 0 and 1). Freezing folds the
            # weights into the graph so inductor can pre-pack them for oneDNN.
            self._forward = torch.compile(self.model, dynamic=True, options={"freezing": True})
            self.compiled = True

    @torch.inference_mode()
    def token_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Last hidden states (float32) of a padded batch."""
        rows = inputs["input_ids"].shape[0]
        if self.compiled and rows == 1:
            inputs = {k: v.repeat(2, 1) for k, v in inputs.items()}
        out = self._run({k: v.to(self.device) for k, v in inputs.items()})
        return out.last_hidden_state[:rows].float()

    def _run(self, kwargs: dict[str, Any]) -> Any:
        if not self.compiled:
            return self.model(**kwargs)
        from torch._dynamo.exc import BackendCompilerFailed  # InductorError is one too

        try:
            return self._forward(**kwargs)
        except BackendCompilerFailed as exc:
            warnings.warn(
                f"torch.compile could not compile the model ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); running it uncompiled",
                RuntimeWarning,
                stacklevel=2,
            )
            self._forward, self.compiled = self.model, False
            return self.model(**kwargs)

    def set_adapter(self, name: str) -> None:
        if not hasattr(self.model, "set_adapter"):
            raise InputError("this model has no task adapters")
        self.model.set_adapter(name)


def with_adapters(model: Any, adapters: dict[str, Path]) -> Any:
    """Wrap `model` with every task's LoRA adapter (peft); one is made active per call."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ModelNotFound(
            "this model carries task adapters; install peft (`pip install peft`)"
        ) from exc
    tasks = list(adapters.items())
    first, path = tasks[0]
    wrapped = PeftModel.from_pretrained(model, str(path), adapter_name=adapter_name(first))
    for task, path in tasks[1:]:
        wrapped.load_adapter(str(path), adapter_name=adapter_name(task))
    return wrapped


def adapter_name(task: str) -> str:
    return task.replace(".", "_")  # torch module names cannot contain dots
