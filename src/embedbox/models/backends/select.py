"""Choosing and opening the backend of a text model: as asked, by hardware rule, or measured.

`backend="auto"` times every faithful backend x compute pair that can run the model here on a
short run over shipped texts, once per machine and model, and reuses the cached winner (see
`autotune.py`). An explicit backend with `compute="auto"` takes the hardware rule instead
(bf16 where the CPU computes it natively, else fp32). A backend that cannot run the model falls
back to torch with the reason recorded in `Selection.fallback`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from embedbox import hardware
from embedbox.errors import InputError, ModelNotFound
from embedbox.models.backends import cache, int8, openvino
from embedbox.models.backends.base import Backend
from embedbox.models.backends.errors import BackendUnavailable
from embedbox.models.backends.torch import TorchBackend, load_model, with_adapters

if TYPE_CHECKING:
    from embedbox.models.text import TextEncoder

BACKENDS = ("torch", "openvino")
COMPUTES = ("fp32", "bf16", "fp16", "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# What `backend="auto"` resolves to when set (torch or openvino): skips the measurement.
BACKEND_ENV = "EMBEDBOX_BACKEND"
FORMAT = 1  # bump when a cached conversion's layout or meaning changes


@dataclass(frozen=True)
class Request:
    """What the caller asked for (from `EmbedderOptions`)."""

    backend: str = "auto"
    compute: str = "auto"
    device: str = "cpu"
    threads: int | None = None
    compile: bool = False
    batch_tokens: int = 2048


@dataclass(frozen=True)
class Selection:
    """What runs, and why: `how` is asked | hardware | measured | measured earlier."""

    backend: str
    compute: str
    how: str
    fallback: str = ""
    gate: int8.GateReport | None = None
    measurements: dict[str, Any] = field(default_factory=dict)
    single_text: str = ""  # backend/compute that runs one-text batches, when auto split them


class ConversionFailed(RuntimeError):
    """A backend could not convert this model (the reason goes into `describe()`)."""


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


def open_backend(enc: TextEncoder, req: Request) -> tuple[Backend, Selection]:
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
            return _build(enc, backend_name, compute, req), Selection(
                backend_name, compute, how, fallback="" if asked in names else why_not
            )
        except ConversionFailed as exc:
            return _fallback(enc, req, str(exc), warn=asked == "openvino")
    from embedbox.models.backends import autotune

    return autotune.choose(enc, req, candidates, why_not)


def _usable(enc: TextEncoder, req: Request, asked: str) -> tuple[list[str], str]:
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


def _fallback(enc: TextEncoder, req: Request, reason: str, warn: bool) -> tuple[Backend, Selection]:
    if enc.info.format == "onnx":
        raise ModelNotFound(f"cannot run {enc.info.path.name}: {reason}")
    if warn:
        warnings.warn(f"{reason}; using torch", RuntimeWarning, stacklevel=5)
    compute = _hardware_rule(_computes(req, ["torch"]))
    return _build(enc, "torch", compute, req), Selection("torch", compute, "fallback", reason)


# ---- building -------------------------------------------------------------------------------
def _build(
    enc: TextEncoder, name: str, compute: str, req: Request, torch_model: Any = None
) -> Backend:
    if name == "torch":
        model = (
            torch_model if torch_model is not None else load_model(enc.info.path, DTYPES[compute])
        )
        if enc.adapters:
            model = with_adapters(model, enc.adapters)
        return TorchBackend(model, torch.device(req.device), compile=req.compile)
    return compile_ir(fp32_ir(enc, torch_model), compute, req.threads)


def compile_ir(model: Any, compute: str, threads: int | None) -> openvino.OpenVINOBackend:
    """Compile for the CPU; a model the plugin cannot compile here is a `ConversionFailed`."""
    try:
        return openvino.OpenVINOBackend(model, compute, threads)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionFailed(
            f"OpenVINO cannot compile the {compute} model here ({first[:200]})"
        ) from exc


def _source_key(enc: TextEncoder, variant: str) -> dict[str, Any]:
    return {
        "kind": "openvino-ir",
        "format": FORMAT,
        "model": cache.model_hash(enc.info.path),
        "source": enc.info.format,
        "variant": variant,
        "openvino": openvino.version(),
    }


def ir_folder(enc: TextEncoder, variant: str, extra: dict[str, Any] | None = None) -> Path:
    parts = {**_source_key(enc, variant), **(extra or {})}
    return cache.cache_dir() / "openvino" / cache.key(parts)


def fp32_ir(enc: TextEncoder, torch_model: Any = None) -> Path:
    """The cached fp32 OpenVINO IR of `enc`'s model, converted (once) when missing or broken."""
    folder = ir_folder(enc, "fp32")
    if cache.read_entry(folder) is not None:
        return folder / "model.xml"
    label = f"converting {enc.info.path.name} to OpenVINO (once; cached in {folder.parent})"
    with status(label):
        try:
            model, reference = _convert(enc, torch_model)
        except BackendUnavailable:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConversionFailed(
                f"OpenVINO cannot convert {enc.info.architecture} ({type(exc).__name__}: "
                f"{first[:200]})"
            ) from exc
        agreement = _verify(enc, model, reference)

        def write(tmp: Path) -> dict[str, Any]:
            openvino.save(model, tmp)
            return {"key": _source_key(enc, "fp32"), "min_cos_vs_torch": agreement}

        cache.write_entry(folder, write, ("model.xml", "model.bin"))
    return folder / "model.xml"


def _convert(enc: TextEncoder, torch_model: Any) -> tuple[Any, Any]:
    """The OpenVINO model, and the float32 torch model to check it against (None for ONNX)."""
    if enc.info.format == "onnx":
        return openvino.read_onnx(enc.info.path, enc.info.dim), None
    if torch_model is None or next(torch_model.parameters()).dtype != torch.float32:
        torch_model = load_model(enc.info.path, torch.float32)
    example = enc.inputs(enc.tokenize(_CHECK_TEXTS))
    return openvino.convert_torch(torch_model, example), torch_model


# Texts of different lengths, so that the check runs a padded batch.
_CHECK_TEXTS = [
    "a cat",
    "Embedbox converts a model once, then checks it against torch on a padded batch of texts "
    "of different lengths before trusting it.",
    "Short and sweet.",
]


def _verify(enc: TextEncoder, model: Any, torch_model: Any) -> float | None:
    """Refuse a conversion whose vectors differ from torch fp32 (min cosine below 0.99999)."""
    if torch_model is None:
        return None
    converted = openvino.OpenVINOBackend(model, "fp32")
    reference = TorchBackend(torch_model, torch.device("cpu"))
    got, want = vectors(enc, converted, _CHECK_TEXTS), vectors(enc, reference, _CHECK_TEXTS)
    cos = float((got * want).sum(1).min()) if np.isfinite(got).all() else float("nan")
    if not cos >= 0.99999:
        raise ConversionFailed(
            f"OpenVINO's conversion of {enc.info.architecture} disagrees with torch "
            f"(min cosine {cos:.5f} on a check batch)"
        )
    return cos


def _open_int8(
    enc: TextEncoder, req: Request, names: list[str], why_not: str
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
    return _build(enc, "openvino", compute, req), Selection(
        "openvino", compute, "fallback", reason, gate=report
    )


def int8_backend(
    enc: TextEncoder, req: Request, calibration: Sequence[str] | None = None
) -> tuple[Backend | None, int8.GateReport]:
    """The gated int8 backend (None when the gate refuses it) and the gate's report.

    Quantised and measured once per model and calibration; the verdict is cached with the IR.
    """
    from embedbox.datasets import calibration_texts

    texts = list(calibration) if calibration is not None else calibration_texts()
    calib, held = int8.split(texts)
    if calibration is not None:  # a caller's calibration is gated on the shipped held-out half
        held = int8.split(calibration_texts())[1]
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    extra: dict[str, Any] = {
        "nncf": int8.nncf_version(),
        "calibration": cache.key({"texts": calib, "held": held}),
        "recipe": int8.RECIPE,
        # int8 kernels (and whether they compile) differ between CPUs: the verdict is per machine
        "cpu_flags": sorted(hardware.cpu_flags() & set(int8.KERNEL_FLAGS)),
        "isa_cap": isa_cap,
    }
    folder = ir_folder(enc, "int8", extra)
    entry = cache.read_entry(folder)
    if entry is not None and entry.get("error"):
        raise ConversionFailed(str(entry["error"]))
    if entry is not None and "gate" in entry:
        report = int8.GateReport.from_dict(entry["gate"])
        if not report.passed:
            return None, report
        return compile_ir(folder / "model.xml", "int8", req.threads), report
    ir = fp32_ir(enc)
    label = f"quantising {enc.info.path.name} to int8 and checking its quality (once)"
    with status(label):
        fp32 = compile_ir(ir, "fp32", req.threads)
        feeds = [
            {k: v.numpy() for k, v in enc.inputs(batch).items() if k in fp32.input_names}
            for batch in batches(enc, calib, 2048)
        ]
        model = openvino.read_ir(ir)
        quantised = int8.quantize(model, feeds, verbose=sys.stderr.isatty())
        try:
            candidate = compile_ir(quantised, "int8", req.threads)
        except ConversionFailed as exc:
            record = {"key": {**_source_key(enc, "int8"), **extra}, "error": str(exc)}
            cache.write_entry(folder, lambda tmp: record, ())
            raise
        report = int8.gate(vectors(enc, fp32, held), vectors(enc, candidate, held))

        def write(tmp: Path) -> dict[str, Any]:
            if report.passed:
                openvino.save(quantised, tmp)
            return {"key": {**_source_key(enc, "int8"), **extra}, "gate": report.to_dict()}

        names = ("model.xml", "model.bin") if report.passed else ()
        cache.write_entry(folder, write, names)
    return (candidate if report.passed else None), report


# ---- running texts through a backend (for measuring) ------------------------------------------
def batches(enc: TextEncoder, texts: Sequence[str], batch_tokens: int) -> list[list[list[int]]]:
    """Token id lists of `texts` (truncated to the model's maximum) in length-sorted batches."""
    limit = enc.info.max_tokens
    ids = [i if len(i) <= limit else enc.truncate(i, limit) for i in enc.tokenize(texts)]
    ids.sort(key=len, reverse=True)
    out: list[list[list[int]]] = []
    for row in ids:
        if out and (len(out[-1]) + 1) * len(out[-1][0]) <= batch_tokens and len(out[-1]) < 128:
            out[-1].append(row)
        else:
            out.append([row])
    return out


def vectors(enc: TextEncoder, backend: Backend, texts: Sequence[str]) -> np.ndarray:
    """Pooled, L2-normalised vectors of `texts` through `backend`, in sorted-length order."""
    pooled = [enc.embed_batch(b, backend=backend) for b in batches(enc, texts, 2048)]
    v = np.concatenate(pooled).astype(np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


@contextlib.contextmanager
def status(label: str) -> Iterator[None]:
    """A spinner with `label` on a terminal (stderr); nothing otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(label):
        yield
