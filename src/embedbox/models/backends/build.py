"""Building backends: torch from the loaded model, OpenVINO from a converted (cached) model,
int8 through its quality gate; and what the selection records (`Request`, `Selection`)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedbox import hardware
from embedbox.models.backends import cache, int8, openvino
from embedbox.models.backends.base import Backend, Encoder
from embedbox.models.backends.errors import BackendUnavailable, ConversionFailed

__all__ = ["DTYPES", "FORMAT", "ConversionFailed", "Request", "Selection", "build"]
from embedbox.models.backends.torch import TorchBackend, load_model, with_adapters

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
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


def build(enc: Encoder, name: str, compute: str, req: Request, torch_model: Any = None) -> Backend:
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


def _source_key(enc: Encoder, variant: str) -> dict[str, Any]:
    return {
        "kind": "openvino-ir",
        "format": FORMAT,
        "model": cache.model_hash(enc.info.path),
        "source": enc.info.format,
        "variant": variant,
        "openvino": openvino.version(),
    }


def ir_folder(enc: Encoder, variant: str, extra: dict[str, Any] | None = None) -> Path:
    parts = {**_source_key(enc, variant), **(extra or {})}
    return cache.cache_dir() / "openvino" / cache.key(parts)


def fp32_ir(enc: Encoder, torch_model: Any = None) -> Path:
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


def _convert(enc: Encoder, torch_model: Any) -> tuple[Any, Any]:
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


def _verify(enc: Encoder, model: Any, torch_model: Any) -> float | None:
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


def int8_backend(
    enc: Encoder, req: Request, calibration: Sequence[str] | None = None
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
    how = int8.recipe(hardware.cpu_flags(), isa_cap)
    extra: dict[str, Any] = {
        "nncf": int8.nncf_version(),
        "calibration": cache.key({"texts": calib, "held": held}),
        "recipe": how.name,
        "keep_float": list(how.keep_float),
        # int8 kernels (and whether they compile) differ between CPUs: the verdict is per machine
        "cpu_flags": sorted(hardware.cpu_flags() & set(int8.KERNEL_FLAGS)),
        "isa_cap": isa_cap,
        "float_hint": openvino.precision_hint("int8"),  # the gate measures the model as it will run
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
        quantised = int8.quantize(model, feeds, how, verbose=sys.stderr.isatty())
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
def batches(enc: Encoder, texts: Sequence[str], batch_tokens: int) -> list[list[list[int]]]:
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


def vectors(enc: Encoder, backend: Backend, texts: Sequence[str]) -> np.ndarray:
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
