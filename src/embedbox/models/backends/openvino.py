"""The OpenVINO backend: a text model converted once to OpenVINO IR, run by its CPU plugin.

Conversion goes straight from the loaded PyTorch model (`openvino.convert_model`), or reads an
ONNX file; the IR is cached (see `cache.py`). fp32 and bf16 share one fp32 IR (bf16 is a compile
hint); int8 is a separate IR quantised by NNCF (see `int8.py`).
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedbox import hardware
from embedbox.models.backends.errors import BackendUnavailable

EXTRA = "embedbox[openvino]"
COMPUTES = ("fp32", "bf16", "int8")


def precision_hint(compute: str) -> str:
    """The plugin's INFERENCE_PRECISION_HINT for a compute. For int8 it sets what the model
    leaves in float (attention, normalisation, the matmuls the recipe keeps): bf16 where the CPU
    computes it natively (on an AVX-512 BF16 EPYC, 743 -> 812 texts/s, mean cosine to fp32
    0.99828 either way), else f32."""
    if compute == "int8":
        return "bf16" if hardware.cpu_has_fast_bf16() else "f32"
    return "bf16" if compute == "bf16" else "f32"


def available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require() -> Any:
    """The openvino module, or a clear error naming the extra to install."""
    if not available():
        raise BackendUnavailable(
            f"backend 'openvino' needs the openvino package; run `pip install '{EXTRA}'`"
        )
    import openvino

    return openvino


def version() -> str:
    return str(require().__version__)


def capabilities() -> set[str]:
    """What the CPU plugin says it can compute here (FP32, BF16, INT8, ...)."""
    ov = require()
    return {str(c) for c in _core(ov).get_property("CPU", "OPTIMIZATION_CAPABILITIES")}


_CORE: Any = None


def _core(ov: Any) -> Any:
    global _CORE
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE


class _LastHiddenState(torch.nn.Module):
    """Only the token states leave the graph (no pooler head to compute)."""

    def __init__(self, model: Any, with_types: bool) -> None:
        super().__init__()
        self.model = model
        self.with_types = with_types

    def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.with_types:
            kwargs["token_type_ids"] = token_type_ids
        return self.model(**kwargs).last_hidden_state


def convert_torch(model: Any, example: dict[str, torch.Tensor]) -> Any:
    """An `openvino.Model` (dynamic batch and length) from a float32 transformers model."""
    ov = require()
    wrapped = _LastHiddenState(model.float().eval(), "token_type_ids" in example)
    names = ["input_ids", "attention_mask"] + (
        ["token_type_ids"] if "token_type_ids" in example else []
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent branches
        converted = ov.convert_model(
            wrapped,
            example_input={n: example[n] for n in names},
            input=[(n, ov.PartialShape([-1, -1]), ov.Type.i64) for n in names],
            share_weights=False,  # the torch model may be freed (or changed) afterwards
        )
    for port, name in zip(converted.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    return converted


def read_onnx(path: Path, dim: int) -> Any:
    """An `openvino.Model` from an ONNX file, keeping only its token-states output (n, t, dim)."""
    ov = require()
    model = _core(ov).read_model(str(path))
    states = [
        out
        for out in model.outputs
        if out.get_partial_shape().rank.get_length() == 3
        and out.get_partial_shape()[2].is_static
        and out.get_partial_shape()[2].get_length() == dim
    ]
    named = [o for o in states if "last_hidden_state" in o.get_names()]
    if not states:
        from embedbox.errors import ModelNotFound

        raise ModelNotFound(f"{path} has no (batch, tokens, {dim}) output to pool")
    return ov.Model([(named or states)[0]], model.get_parameters(), "text-encoder")


def save(model: Any, folder: Path) -> None:
    ov = require()
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)


class OpenVINOBackend:
    """Runs an OpenVINO model on the CPU: `token_states` takes and returns torch tensors."""

    name = "openvino"

    def __init__(self, model: Any, compute: str, threads: int | None = None) -> None:
        ov = require()
        if compute not in COMPUTES:
            raise BackendUnavailable(f"backend 'openvino' has no compute {compute!r}")
        self.compute = compute
        config = {
            "INFERENCE_PRECISION_HINT": precision_hint(compute),
            "PERFORMANCE_HINT": "LATENCY",  # one stream over all threads: one caller at a time
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        }
        source = str(model) if isinstance(model, Path) else model
        self._compiled = _core(ov).compile_model(source, "CPU", config)
        hint = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        if compute == "bf16" and "bfloat16" not in hint and "bf16" not in hint:
            self.compute = "fp32"  # the plugin runs f32 where it has no bf16: say so
        self.input_names = [p.get_any_name() for p in self._compiled.inputs]
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()
        self.device = torch.device("cpu")

    def token_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feed: dict[str, np.ndarray] = {}
        for name in self.input_names:
            if name in inputs:
                feed[name] = inputs[name].numpy()
            elif name == "token_type_ids":
                feed[name] = np.zeros_like(inputs["input_ids"].numpy())
            else:
                raise BackendUnavailable(f"the OpenVINO model wants an input {name!r}")
        with self._lock:
            self._request.infer(feed)
            states = np.array(self._request.get_output_tensor(0).data, dtype=np.float32)
        return torch.from_numpy(states)

    def set_adapter(self, name: str) -> None:
        raise BackendUnavailable("task adapters run on the torch backend only")


def read_ir(path: Path) -> Any:
    return _core(require()).read_model(str(path))
