"""`backend="auto"`: time the faithful backend x compute pairs once per machine and model.

On first use each candidate runs the same short set of shipped texts (a warm-up, then rounds
that alternate between candidates so that load on a shared machine hits all alike). Candidates
whose vectors drift from torch fp32 (min cosine < 0.999) are dropped; the fastest of the rest
wins. The choice is cached under a key of the machine (CPU flags, oneDNN ISA cap, threads,
device), the runtime versions and the model's content hash: a changed key measures again. Pass
an explicit backend (or set `$EMBEDBOX_BACKEND`) to skip the measurement.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import torch

from embedbox import hardware
from embedbox.models.backends import build as select
from embedbox.models.backends import cache, openvino
from embedbox.models.backends.base import Backend, Encoder
from embedbox.models.backends.torch import load_model

MIN_COS = 0.999
SAMPLE = 32  # texts timed per candidate and round
ROUNDS = 2
LATENCY_TEXTS = 6
SINGLE_TEXT_GAIN = 1.25  # a second backend for single texts only when this much faster
_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_bf16", "amx_int8")


def machine_key(
    enc: Encoder, req: select.Request, candidates: list[tuple[str, str]]
) -> dict[str, Any]:
    """Everything a measured choice depends on."""
    return {
        "kind": "auto-choice",
        "format": select.FORMAT,
        "model": cache.model_hash(enc.info.path),
        "max_tokens": enc.info.max_tokens,
        "device": req.device,
        "threads": req.threads or torch.get_num_threads(),
        "batch_tokens": req.batch_tokens,
        "cpu_flags": sorted(set(_FLAGS) & hardware.cpu_flags()),
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper(),
        "torch": torch.__version__,
        "openvino": openvino.version() if openvino.available() else None,
        "candidates": [f"{b}/{c}" for b, c in candidates],
    }


def choose(
    enc: Encoder, req: select.Request, candidates: list[tuple[str, str]], why_not: str
) -> tuple[Backend, select.Selection]:
    """The cached winner for this machine and model, measured first when there is none."""
    path = cache.cache_dir() / "auto" / f"{cache.key(machine_key(enc, req, candidates))}.json"
    saved = cache.read_json(path)
    if saved is not None and _valid(saved, candidates):
        try:
            built = {label: _build(enc, label, req) for label in _wanted(saved)}
        except select.ConversionFailed:
            pass  # measured earlier, cannot be rebuilt now: measure again
        else:
            return _compose(built, saved, "measured earlier", why_not)
    built, record = measure(enc, req, candidates)
    cache.write_json(path, record)
    fallback = "; ".join(r for r in (why_not, *record["dropped"].values()) if r)
    return _compose(built, record, "measured", fallback)


def _build(enc: Encoder, label: str, req: select.Request) -> Backend:
    name, compute = label.split("/")
    return select.build(enc, name, compute, req)


def _single_text(record: dict[str, Any]) -> str | None:
    """The latency winner, when it beats the batch winner on one text by a clear margin."""
    batch, single = record["winner"], record.get("latency_winner")
    latency = record.get("latency_ms", {})
    if single is None or single == batch or single not in latency or batch not in latency:
        return None
    return str(single) if latency[batch] > SINGLE_TEXT_GAIN * latency[single] else None


def _wanted(record: dict[str, Any]) -> list[str]:
    single = _single_text(record)
    return [record["winner"], *([single] if single else [])]


def _compose(
    built: dict[str, Backend], record: dict[str, Any], how: str, fallback: str
) -> tuple[Backend, select.Selection]:
    winner = record["winner"]
    name, compute = winner.split("/")
    single = _single_text(record)
    backend = built[winner] if single is None else BySize(built[winner], built[single])
    return backend, select.Selection(
        name, compute, how, fallback, None, record, single_text=single or ""
    )


class BySize:
    """Routes one-text batches (the server's and search's usual call) to the backend that was
    fastest on single texts, and every other batch to the throughput winner."""

    def __init__(self, batch: Backend, single: Backend) -> None:
        self.batch, self.single = batch, single
        self.name, self.compute, self.device = batch.name, batch.compute, batch.device

    def token_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        one = inputs["input_ids"].shape[0] == 1
        return (self.single if one else self.batch).token_states(inputs)

    def set_adapter(self, name: str) -> None:
        self.batch.set_adapter(name)
        self.single.set_adapter(name)


def _valid(saved: dict[str, Any], candidates: list[tuple[str, str]]) -> bool:
    winner = saved.get("winner")
    return isinstance(winner, str) and tuple(winner.split("/")) in candidates


def measure(
    enc: Encoder, req: select.Request, candidates: list[tuple[str, str]]
) -> tuple[dict[str, Backend], dict[str, Any]]:
    """Build and time every candidate; returns the winners and the record to cache."""
    from embedbox.datasets import calibration_texts

    texts = calibration_texts()[1::2][:SAMPLE]
    built: dict[str, Backend] = {}
    dropped: dict[str, str] = {}
    label = f"measuring backends for {enc.info.path.name} on this machine (once)"
    with select.status(label):
        reference_model = None
        if any(b == "torch" for b, _ in candidates) or enc.info.format != "onnx":
            reference_model = load_model(enc.info.path, torch.float32)
        for name, compute in candidates:
            label = f"{name}/{compute}"
            try:
                model = reference_model if (name, compute) != ("torch", "bf16") else None
                built[label] = select.build(enc, name, compute, req, torch_model=model)
            except select.ConversionFailed as exc:
                dropped[label] = str(exc)
        batches = select.batches(enc, texts, req.batch_tokens)
        reference = next(iter(built))  # torch/fp32 (or openvino/fp32 for ONNX files): exact
        want = select.vectors(enc, built[reference], texts)
        min_cos: dict[str, float] = {}
        for label, backend in list(built.items()):
            got = select.vectors(enc, backend, texts)  # also the warm-up
            min_cos[label] = float((got * want).sum(1).min())
            if min_cos[label] < MIN_COS:
                dropped[label] = f"{label} drifts from fp32 (min cosine {min_cos[label]:.5f})"
                del built[label]
        seconds = {label: float("inf") for label in built}
        for _ in range(ROUNDS):
            for label, backend in built.items():
                start = time.perf_counter()
                for batch in batches:
                    enc.embed_batch(batch, backend=backend)
                seconds[label] = min(seconds[label], time.perf_counter() - start)
        singles = [b for batch in batches for b in batch][:: max(1, len(texts) // LATENCY_TEXTS)]
        latency: dict[str, float] = {}
        for label, backend in built.items():
            times = []
            for ids in singles:
                start = time.perf_counter()
                enc.embed_batch([ids], backend=backend)
                times.append(time.perf_counter() - start)
            latency[label] = statistics.median(times)
    winner = min(seconds, key=seconds.__getitem__)
    record = {
        "winner": winner,
        "latency_winner": min(latency, key=latency.__getitem__),
        "texts_per_s": {k: round(len(texts) / v, 1) for k, v in seconds.items()},
        "latency_ms": {k: round(v * 1000, 3) for k, v in latency.items()},
        "min_cos": {k: round(v, 6) for k, v in min_cos.items()},
        "dropped": dropped,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return {label: built[label] for label in _wanted(record)}, record
