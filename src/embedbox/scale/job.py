"""`run_job`: plan shards, skip the finished ones, run the rest on an engine, record each."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedbox.embed import Embedder
from embedbox.errors import Conflict, InputError
from embedbox.scale import manifest as mf
from embedbox.scale.engines import run_local, run_ray
from embedbox.scale.reader import plan
from embedbox.scale.shard import make_embedder
from embedbox.scale.spec import JobSpec
from embedbox.types import Progress


@dataclass(frozen=True)
class JobReport:
    """What a run did. `rows`/`tokens`/`rows_per_s` count this run; `total_rows` the output."""

    output: str
    engine: str
    workers: int
    model: str
    dim: int
    precision: str
    shards: int
    skipped_shards: int
    rows: int
    total_rows: int
    bad_rows: int
    tokens: int
    truncated: int
    seconds: float
    rows_per_s: float
    errors_file: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_job(
    spec: JobSpec, progress: Progress | None = None, embedder: Embedder | None = None
) -> JobReport:
    """Embed `spec.inputs` into Parquet shards under `spec.output`; resumes a stopped run.

    `embedder`: reuse a loaded model for a one-process local run (`workers=1`).
    """
    began = time.perf_counter()
    if embedder is not None and (spec.engine != "local" or spec.worker_count() != 1):
        raise InputError("a loaded embedder can only be reused by a local run with workers=1")
    if embedder is not None:
        _check_embedder(embedder, spec)
    out = spec.output_dir
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; give a folder")
    planned = plan(spec.inputs, spec.shard_rows, spec.text_column)
    if not any(info.rows for info, _ in planned):
        raise InputError(f"no rows to embed in {', '.join(spec.inputs)}")
    out.mkdir(parents=True, exist_ok=True)
    inputs = [dict(info.__dict__) for info, _ in planned]
    old = mf.load(out)
    if spec.overwrite:
        mf.clear(out)
        old = None
    elif old is not None:
        mf.check_resumable(old, spec.settings(), inputs)
    elif any(out.glob("part-*.parquet")):
        raise Conflict(f"{out} holds part files but no manifest; use an empty --output folder")
    for stale in out.glob(".tmp-*"):  # left by a killed run
        stale.unlink()
    man = old or mf.Manifest(spec.settings(), inputs)
    shards = [s for _, group in planned for s in group]
    done = {n for n in man.shards if (out / f"{n}.parquet").exists()}
    pending = [s for s in shards if s.name not in done]
    total = sum(info.rows for info, _ in planned)
    state = {"rows_in": sum(s.stop - s.start for s in shards if s.name in done)}
    counts = {"rows": 0, "tokens": 0, "truncated": 0}
    man.complete = False
    man.save(out)
    if progress is not None:
        progress(state["rows_in"], total)

    def on_done(result: dict[str, Any]) -> None:
        if "failure" in result:
            raise InputError(result["failure"])
        man.model = result.pop("model")
        man.shards[result["name"]] = result
        man.save(out)
        for key in counts:
            counts[key] += result[key]
        state["rows_in"] += result["stop"] - result["start"]
        if progress is not None:
            progress(state["rows_in"], total)

    if spec.engine == "ray":
        info = run_ray(spec, pending, on_done)
    else:
        info = run_local(spec, pending, on_done, embedder)
    if not man.model:  # nothing to embed at all: record the model all the same
        emb = embedder or make_embedder(spec, spec.threads)
        man.model = {
            "name": emb.name,
            "dim": spec.dimensions or emb.dim,
            "precision": spec.precision,
        }
    errors_file = _gather_errors(out, [s.name for s in shards])
    seconds = time.perf_counter() - began
    report = JobReport(
        output=str(out),
        engine=spec.engine,
        workers=int(info["workers"]),
        model=str(man.model["name"]),
        dim=int(man.model["dim"]),
        precision=spec.precision,
        shards=len(shards),
        skipped_shards=len(shards) - len(pending),
        rows=counts["rows"],
        total_rows=sum(int(man.shards[s.name]["rows"]) for s in shards),
        bad_rows=sum(int(man.shards[s.name]["errors"]) for s in shards),
        tokens=counts["tokens"],
        truncated=counts["truncated"],
        seconds=round(seconds, 3),
        rows_per_s=round(counts["rows"] / seconds, 1) if seconds > 0 else 0.0,
        errors_file=errors_file,
    )
    man.complete = True
    man.summary = report.to_dict()
    man.save(out)
    return report


def _check_embedder(emb: Embedder, spec: JobSpec) -> None:
    from embedbox.catalog import same_model

    compute = emb.compute
    if not same_model(emb.name, spec.model) or spec.compute not in (
        "auto",
        compute,
    ):
        raise InputError(
            f"the embedder given runs {emb.name} in {compute}, but the job asks for "
            f"{spec.model} in {spec.compute}; pass a matching embedder or none"
        )


def _gather_errors(out: Path, names: list[str]) -> str | None:
    """Join the shards' error files, in shard order, into `errors.jsonl` (atomically)."""
    lines: list[str] = []
    for name in names:
        path = out / mf.ERRORS_DIR / f"{name}.jsonl"
        if path.exists():
            lines.append(path.read_text(encoding="utf-8"))
    target = out / mf.ERRORS
    if not lines:
        target.unlink(missing_ok=True)
        return None
    mf.write_atomic(target, "".join(lines).encode())
    return str(target)


def read_errors(output: str) -> list[dict[str, Any]]:
    """The bad rows a job set aside (empty when there were none)."""
    path = Path(output) / mf.ERRORS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
