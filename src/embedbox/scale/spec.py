"""What a dataset job does, as one frozen dataclass, and the settings that pin its output."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.errors import InputError
from embedbox.quantize import check_precision

Engine = Literal["local", "ray"]


def available_cores() -> int:
    """CPU cores this process may use (its affinity set where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class JobSpec:
    """One `embed-dataset` job: inputs, output folder, model settings and how to run it.

    `workers`: processes (local) or actors (ray); default one per core, or one per GPU.
    `threads`: torch threads per worker; default cores // workers.
    `shard_rows`: rows per output shard, the unit of work and of resumption.
    `batch_size`: most texts per forward pass inside a worker.
    `keep`: input columns copied to the output (default: all but the id column).
    """

    inputs: tuple[str, ...]
    output: str
    model: str = DEFAULT_TEXT_MODEL
    text_column: str = "text"
    id_column: str | None = None
    keep: tuple[str, ...] | None = None
    precision: str = "float32"
    dimensions: int | None = None
    compute: str = "auto"
    engine: Engine = "local"
    address: str | None = None
    workers: int | None = None
    threads: int | None = None
    shard_rows: int = 10_000
    batch_size: int = 128
    num_gpus: float | None = None
    strict: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.inputs:
            raise InputError("embed-dataset needs at least one input file or folder")
        if self.engine not in ("local", "ray"):
            raise InputError(f"unknown engine {self.engine!r}; choose local or ray")
        if self.address is not None and self.engine != "ray":
            raise InputError("--address only applies to --engine ray")
        check_precision(self.precision)
        for name, value, low in (
            ("workers", self.workers, 1),
            ("threads", self.threads, 1),
            ("shard_rows", self.shard_rows, 1),
            ("batch_size", self.batch_size, 1),
            ("dimensions", self.dimensions, 1),
        ):
            if value is not None and value < low:
                raise InputError(f"{name} must be at least {low}, got {value}")
        for name in self.keep or ():
            if name in ("id", "vector"):
                raise InputError(f"--keep {name!r}: the output already has a column {name!r}")
        if not self.text_column:
            raise InputError("text_column must name a column")

    @property
    def output_dir(self) -> Path:
        return Path(self.output)

    def worker_count(self) -> int:
        return self.workers or available_cores()

    def thread_count(self) -> int:
        return self.threads or max(1, available_cores() // self.worker_count())

    def settings(self) -> dict[str, Any]:
        """The settings that decide the output's content; a rerun must match them to resume."""
        return {
            "model": self.model,
            "text_column": self.text_column,
            "id_column": self.id_column,
            "keep": list(self.keep) if self.keep is not None else None,
            "precision": self.precision,
            "dimensions": self.dimensions,
            "compute": self.compute,
            "shard_rows": self.shard_rows,
        }
