"""Run tasks for every model x compute x dimensions x output precision, in one pass per model.

Each model runs once per compute and task (timed: that is `texts_per_s`); `dimensions` and
`precision` are applied to those float32 vectors exactly as `Embedder.embed(dimensions=...,
precision=...)` applies them (truncate and re-normalise, then quantise with the model's int8
calibration), so a grid of sizes costs one forward pass. Quantised vectors are scored by cosine
of their dequantised values; for binary that ranks exactly as Hamming similarity does.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from embedbox.errors import InputError
from embedbox.evaluation.tasks import Encode, InputType, Task
from embedbox.quantize import check_precision, dequantize, quantize
from embedbox.similarity import normalize, shorten

if TYPE_CHECKING:
    from embedbox.embed import Embedder

Message = Callable[[str], None]


@dataclass(frozen=True)
class Setting:
    """One way to run a model: its compute dtype and the output it is judged on."""

    model: str
    compute: str = "auto"
    dimensions: int | None = None
    precision: str = "float32"

    def label(self) -> str:
        size = f"{self.dimensions}d" if self.dimensions else "full"
        return f"{self.model} {self.compute} {size} {self.precision}"


@dataclass(frozen=True)
class TaskResult:
    """Metrics of one task under one setting, with speed and size."""

    task: str
    kind: str
    setting: Setting
    metrics: dict[str, float]
    dim: int
    vector_bytes: int
    texts: int
    seconds: float
    load_s: float | None
    device_compute: str

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "kind": self.kind,
            "model": self.setting.model,
            "compute": self.setting.compute,
            "dtype": self.device_compute,
            "dimensions": self.dim,
            "precision": self.setting.precision,
            **{k: round(v, 6) for k, v in self.metrics.items()},
            "texts": self.texts,
            "texts_per_s": round(self.texts_per_s, 2),
            "vector_bytes": self.vector_bytes,
            "load_s": None if self.load_s is None else round(self.load_s, 3),
        }


@dataclass
class EvalReport:
    """All results of one run and the machine it ran on."""

    results: list[TaskResult] = field(default_factory=list)
    machine: str = ""

    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.results]

    @classmethod
    def from_dicts(cls, rows: Sequence[dict[str, Any]], machine: str = "") -> EvalReport:
        """A report back from its `to_dicts()` rows (e.g. a saved `--output` file)."""
        fixed = {"task", "kind", "model", "compute", "dtype", "dimensions", "precision"}
        fixed |= {"texts", "texts_per_s", "vector_bytes", "load_s"}
        report = cls(machine=machine)
        for row in rows:
            speed = float(row["texts_per_s"])
            report.results.append(
                TaskResult(
                    row["task"],
                    row["kind"],
                    Setting(row["model"], row["compute"], row["dimensions"], row["precision"]),
                    {k: float(v) for k, v in row.items() if k not in fixed},
                    int(row["dimensions"]),
                    int(row["vector_bytes"]),
                    int(row["texts"]),
                    row["texts"] / speed if speed > 0 else 0.0,
                    row["load_s"],
                    row["dtype"],
                )
            )
        return report

    def settings(self) -> list[Setting]:
        return list(dict.fromkeys(r.setting for r in self.results))

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(r.task for r in self.results))


class _Vectors:
    """Float32 vectors of one model for one task, embedded once (timed) and reused per setting."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.cache: dict[tuple[InputType | None, tuple[str, ...]], np.ndarray] = {}
        self.texts = 0
        self.seconds = 0.0

    def raw(self, texts: Sequence[str], input_type: InputType | None) -> np.ndarray:
        key = (input_type, tuple(texts))
        if key not in self.cache:
            start = time.perf_counter()
            # Long texts are truncated to the model's window, as sentence-transformers does.
            self.cache[key] = self.embedder.embed(
                list(texts), input_type=input_type, truncate=False
            )
            self.seconds += time.perf_counter() - start
            self.texts += len(texts)
        return self.cache[key]

    def encoder(self, dimensions: int | None, precision: str) -> Encode:
        emb = self.embedder
        # The calibration is fitted (and its texts embedded) here, outside the timed passes.
        calibration = emb._calibration(precision, dimensions)

        def encode(texts: Sequence[str], input_type: InputType | None) -> np.ndarray:
            vectors = shorten(self.raw(texts, input_type), dimensions, emb.info.normalize)
            stored = quantize(vectors, precision, calibration)
            return normalize(dequantize(stored, precision, calibration))

        return encode


def _load(model: str, compute: str) -> Embedder:
    from embedbox.embed import Embedder

    return Embedder(model, compute=compute)


def vector_bytes(dim: int, precision: str) -> int:
    """Bytes one stored vector takes at `precision`."""
    per = {"float32": 4.0, "float16": 2.0, "int8": 1.0, "uint8": 1.0}.get(precision)
    return int(dim * per) if per is not None else (dim + 7) // 8


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None or isinstance(value, str | int):
        return (value,)
    return tuple(value)


def evaluate(
    tasks: Task | Sequence[Task],
    models: str | Embedder | Sequence[str | Embedder] = "all-MiniLM-L6-v2",
    *,
    compute: str | Sequence[str] = "auto",
    dimensions: int | Sequence[int | None] | None = None,
    precision: str | Sequence[str] = "float32",
    message: Message | None = None,
    loader: Callable[[str, str], Embedder] | None = None,
) -> EvalReport:
    """Evaluate every model x compute x dimensions x precision on `tasks`.

    `models` are catalog names, folders, or loaded `Embedder`s (used as they are: `compute` does
    not apply to them). `dimensions=None` keeps the model's full width. `loader(model, compute)`
    loads a model (default: `Embedder(model, compute=compute)`); `message` hears progress.
    """
    from embedbox import hardware
    from embedbox.embed import Embedder

    task_list = [tasks] if isinstance(tasks, Task) else list(tasks)
    if not task_list:
        raise InputError("no task to evaluate")
    model_list = [models] if isinstance(models, str | Embedder) else list(models)
    if not model_list:
        raise InputError("no model to evaluate")
    computes, dims = _as_tuple(compute), _as_tuple(dimensions)
    precisions = tuple(check_precision(p) for p in _as_tuple(precision))
    for d in dims:
        if d is not None and (not isinstance(d, int) or d < 1):
            raise InputError(f"dimensions must be positive integers, got {d!r}")
    say = message or (lambda _: None)
    report = EvalReport(machine=hardware.describe())
    for model in model_list:
        for comp in computes if isinstance(model, str) else (None,):
            load_s: float | None = None
            if isinstance(model, str):
                say(f"loading {model} ({comp})")
                start = time.perf_counter()
                emb = (loader or _load)(model, comp)
                load_s = time.perf_counter() - start
            else:
                emb = model
            too_wide = [d for d in dims if d is not None and d > emb.dim]
            if too_wide:
                raise InputError(f"dimensions {too_wide[0]} exceeds {emb.name}'s {emb.dim}")
            name = model if isinstance(model, str) else emb.name
            dtype = str(emb.dtype).removeprefix("torch.")
            for task in task_list:
                vectors = _Vectors(emb)
                for d in dims:
                    for p in precisions:
                        setting = Setting(name, comp or dtype, d, p)
                        say(f"{task.name}: {setting.label()}")
                        scores = task.run(vectors.encoder(d, p))
                        width = d or emb.dim
                        report.results.append(
                            TaskResult(
                                task.name,
                                task.kind,
                                setting,
                                scores,
                                width,
                                vector_bytes(width, p),
                                vectors.texts,
                                vectors.seconds,
                                load_s,
                                dtype,
                            )
                        )
            if isinstance(model, str):
                del emb
                gc.collect()
    return report
