"""Choosing and opening the backend of a text model: as asked, by hardware rule, or measured.

`backend="auto"` times every faithful backend x compute pair that can run the model here on a
short run over shipped texts, once per machine and model, and reuses the cached winner (see
`autotune.py`). An explicit backend with `compute="auto"` takes the hardware rule instead
(bf16 where the CPU computes it natively, else fp32). A backend that cannot run the model falls
back to torch with the reason recorded in `Selection.fallback`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import torch

from embedbox import hardware
from embedbox.errors import InputError, ModelNotFound
from embedbox.models.backends import openvino
from embedbox.models.backends.base import Backend, Encoder
from embedbox.models.backends.build import (
    DTYPES,
    ConversionFailed,
    Request,
    Selection,
    build,
    int8_backend,
)

__all__ = ["Request", "Selection", "check_request", "forced_backend", "open_backend"]
from embedbox.models.backends.errors import BackendUnavailable

BACKENDS = ("torch", "openvino")
COMPUTES = ("fp32", "bf16", "fp16", "int8")
# What `backend="auto"` resolves to when set (torch or openvino): skips the measurement.
BACKEND_ENV = "EMBEDBOX_BACKEND"


def check_request(req: Request) -> Request:
    backend = req.backend
    if backend not in ("auto", *BACKENDS):
        raise InputError(f"unknown backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
    if req.compute not in ("auto", *COMPUTES):
        raise InputError(f"unknown compute {req.compute!r}; choose auto, fp32, bf16, fp16 or int8")
    return req


def forced_backend() -> str | None:
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if not forced:
        return None
    if forced not in BACKENDS:
        raise InputError(f"${BACKEND_ENV} must be one of {', '.join(BACKENDS)}, not {forced!r}")
    return forced


def open_backend(enc: Encoder, req: Request) -> tuple[Backend, Selection]:
    """The backend that will run `enc`'s model, and the record of how it was chosen."""
    req = check_request(req)
    asked = req.backend
    if asked == "auto" and (forced := forced_backend()) is not None:
        asked = forced
    names, why_not = _usable(enc, req, asked)
    if req.backend == "auto" and asked not in names:
        asked = (
            "auto"  # $EMBEDBOX_BACKEND is a preference: choose as auto would where it cannot run
        )
    computes = _computes(req, names)
    if req.compute == "int8":
        return _open_int8(enc, req, names, why_not)
    if asked != "auto" and asked not in names:
        warnings.warn(
            f"backend {asked!r} cannot run {enc.info.path.name}: {why_not}; using torch",
            RuntimeWarning,
            stacklevel=4,
        )
    candidates = [(b, c) for b in names for c in computes if _supports(b, c)]
    if asked != "auto" or len(candidates) == 1 or req.compile:  # compiling each would take minutes
        backend_name = asked if asked in names else names[0]
        compute = _hardware_rule([c for b, c in candidates if b == backend_name] or computes)
        how = "asked" if req.compute != "auto" else "hardware"
        try:
            return build(enc, backend_name, compute, req), Selection(
                backend_name, compute, how, fallback="" if asked in names else why_not
            )
        except ConversionFailed as exc:
            return _fallback(enc, req, str(exc), warn=asked == "openvino")
    from embedbox.models.backends import autotune

    return autotune.choose(enc, req, candidates, why_not)


def _usable(enc: Encoder, req: Request, asked: str) -> tuple[list[str], str]:
    """Backends that can run this model here, and why openvino cannot (when it cannot)."""
    if enc.info.format == "onnx":
        if req.backend == "torch":  # asked for by name ($EMBEDBOX_BACKEND cannot apply here)
            raise BackendUnavailable(
                f"{enc.info.path.name} is an ONNX model; it runs on backend 'openvino' "
                f"(or 'auto'), `pip install '{openvino.EXTRA}'`"
            )
        if not openvino.available():
            raise ModelNotFound(
                f"{enc.info.path.name} is an ONNX model and needs the OpenVINO backend; "
                f"run `pip install '{openvino.EXTRA}'`"
            )
        return ["openvino"], ""
    reason = ""
    if enc.adapters:
        reason = "task adapters run on the torch backend only"
    elif torch.device(req.device).type != "cpu":
        reason = f"OpenVINO runs here on the CPU only, not on {req.device}"
    elif req.compile:
        reason = "compile=True is a torch option"
    elif req.compute == "fp16":
        reason = "fp16 on a CPU is a torch compute"
    elif not openvino.available():
        if asked == "openvino" or req.compute == "int8":
            openvino.require()  # raises, naming the extra
        reason = f"openvino is not installed (`pip install '{openvino.EXTRA}'`)"
    return (["torch"] if reason else ["torch", "openvino"]), reason


def _computes(req: Request, names: list[str]) -> list[str]:
    if req.compute != "auto":
        return [req.compute]
    if torch.device(req.device).type == "cuda":
        return ["fp16"]
    forced = os.environ.get(hardware.COMPUTE_ENV, "").strip().lower()
    if forced:
        hardware.auto_dtype("cpu")  # validates the variable
        return [forced]
    return ["fp32", "bf16"] if hardware.cpu_has_fast_bf16() else ["fp32"]


def _supports(backend: str, compute: str) -> bool:
    if backend == "torch":
        return compute in DTYPES
    if compute == "bf16" and hardware.cpu_has_fast_bf16():
        return "BF16" in openvino.capabilities()
    return compute in ("fp32", "bf16", "int8")


def _hardware_rule(computes: Sequence[str]) -> str:
    return "bf16" if "bf16" in computes else computes[0]


def _fallback(enc: Encoder, req: Request, reason: str, warn: bool) -> tuple[Backend, Selection]:
    if enc.info.format == "onnx":
        raise ModelNotFound(f"cannot run {enc.info.path.name}: {reason}")
    if warn:
        warnings.warn(f"{reason}; using torch", RuntimeWarning, stacklevel=5)
    compute = _hardware_rule(_computes(req, ["torch"]))
    return build(enc, "torch", compute, req), Selection("torch", compute, "fallback", reason)


def _open_int8(
    enc: Encoder, req: Request, names: list[str], why_not: str
) -> tuple[Backend, Selection]:
    if req.backend == "torch":
        raise InputError("compute 'int8' runs on backend 'openvino' (or 'auto'), not 'torch'")
    if "openvino" not in names:
        return _fallback(enc, req, f"int8 is not available for this model: {why_not}", warn=True)
    try:
        backend, report = int8_backend(enc, req)
    except ConversionFailed as exc:
        return _fallback(enc, req, str(exc), warn=True)
    if backend is not None:
        return backend, Selection("openvino", "int8", "asked", gate=report)
    reason = f"int8 refused: it misses the quality bar ({report.line()})"
    warnings.warn(f"{reason}; using a faithful compute instead", RuntimeWarning, stacklevel=4)
    compute = _hardware_rule([c for c in _computes(Request(), names) if _supports("openvino", c)])
    return build(enc, "openvino", compute, req), Selection(
        "openvino", compute, "fallback", reason, gate=report
    )
