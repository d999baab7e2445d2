"""Fine-tune a sentence model on your own data and prove, on held-out data, whether it helped.

>>> report = train("all-MiniLM-L6-v2", "pairs.jsonl", "my-model")   # doctest: +SKIP
>>> report.before, report.after, report.recommended                # doctest: +SKIP

The objective follows the data's shape (see `train_data`): pairs train with
MultipleNegativesRankingLoss, scored pairs with CoSENT, labelled texts with SetFit-style pairs
(or batch-hard triplets); `matryoshka=(384, 256, 128, 64)` wraps the loss in MatryoshkaLoss. The
loop is sentence-transformers' `SentenceTransformerTrainer` (the `train` extra).

Part of the data is held out (or given as `eval_data`) and scored with the base model before and
with the result after; the report and the model card say plainly when the result is worse, and
recommend the base model then. Checkpoints are written to `<output>/checkpoints` (one per epoch,
or per evaluation); running the same command again after an interruption or a `kill -9` resumes
from the newest complete one. The output is a normal sentence-transformers folder.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedbox.errors import Conflict, EmbedboxError, InputError
from embedbox.tasks.train_data import (
    MAX_HELD_OUT,
    Examples,
    Fields,
    read_examples,
    split,
)
from embedbox.tasks.train_eval import HEADLINE, evaluate
from embedbox.tasks.train_options import TrainOptions, TrainReport

if TYPE_CHECKING:
    from embedbox.tasks.train_loop import Outcome

__all__ = ["TrainOptions", "TrainReport", "train"]  # the options and report: train_options.py

Progress = Callable[[int, int], None]
RUN_FILE = "run.json"  # in <output>/checkpoints: which run the checkpoints belong to
REPORT_FILE = "train_report.json"


def train(
    base: str,
    data: str | Path,
    output: str | Path,
    options: TrainOptions | None = None,
    *,
    progress: Progress | None = None,
    callbacks: Sequence[Any] = (),
    **overrides: Any,
) -> TrainReport:
    """Fine-tune `base` (catalog name, registered name or folder) on `data` into `output`.

    `options` / keyword overrides: see `TrainOptions`. `progress(step, steps)` is called after
    each optimiser step; `callbacks` are extra `transformers.TrainerCallback`s. Running again
    with the same base, data and options resumes from the newest checkpoint.
    """
    opts = replace(options or TrainOptions(), **overrides)
    if isinstance(opts.fields, dict):
        opts = replace(opts, fields=Fields(**opts.fields))
    opts.check()
    _require_training_libraries()
    from embedbox import models

    base_path, _ = models.resolve(base)
    out = Path(output).expanduser().resolve()
    if out == base_path or out in base_path.parents:
        raise InputError(f"the output folder {out} would overwrite the base model; choose another")
    examples = read_examples(data, opts.objective, opts.fields)
    if opts.mine_negatives and (examples.objective != "pairs" or examples.has_negatives):
        raise InputError("mine_negatives is for (anchor, positive) pairs without negatives")
    opts = replace(opts, matryoshka=_check_dims(opts.matryoshka, base_path))
    if opts.eval_data is not None:
        held = read_examples(opts.eval_data, examples.objective, opts.fields)
        train_ex, held_source = examples, str(opts.eval_data)
    else:
        train_ex, held = split(examples, opts.eval_fraction, opts.seed)
        held_source = (
            f"{len(held)} of {len(examples)} examples held out "
            f"({opts.eval_fraction:.0%}, at most {MAX_HELD_OUT}; seed {opts.seed})"
        )
    run_id = _fingerprint(base_path, data, opts)
    run = _Run(base, base_path, out, opts, train_ex, held, held_source, examples.source, run_id)
    run.saved = _prepare_output(out, run_id, opts.overwrite)
    with _torch_threads(opts.threads):
        return _fit(run, progress, callbacks)


@dataclass
class _Run:
    """One training run, checked and ready: what `_fit` needs."""

    base: str
    base_path: Path
    out: Path
    opts: TrainOptions
    train: Examples
    held: Examples
    held_source: str
    source: str
    run_id: str
    saved: dict[str, Any] | None = None  # the record of an interrupted run being resumed
    notes: list[str] = field(default_factory=list)


def _fit(run: _Run, progress: Progress | None, callbacks: Sequence[Any]) -> TrainReport:
    from embedbox.embed import Embedder
    from embedbox.tasks import train_loop as loop

    opts, folder = run.opts, run.out / "checkpoints"
    encode_base = _encoder(Embedder(str(run.base_path), compute="fp32"))
    if opts.mine_negatives:
        from embedbox.tasks.train_negatives import MARGIN, mine_negatives

        mined = mine_negatives(run.train, encode_base, opts.seed)
        run.train = mined.examples
        run.notes.append(
            f"hard negatives mined with the base model: {mined.mined} found by search, "
            f"{mined.random} random (no candidate below {MARGIN} x the positive's score)"
        )
    if run.saved is not None:
        before = {k: float(v) for k, v in run.saved["before"].items()}
    else:
        before = evaluate(encode_base, run.held, run.train)
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / RUN_FILE, {"fingerprint": run.run_id, "before": before})
    del encode_base  # the base model's memory, before the trainer loads its own copy
    model = loop.load_model(run.base_path, opts.max_seq_length)
    planned = loop.plan(model, run.train, opts)
    run.notes += planned.notes
    if loop.uses_bf16(opts.precision):
        run.notes.append("trained under bf16 autocast (weights and optimiser state in fp32)")
    resume = loop.last_checkpoint(folder) if run.saved is not None else None
    outcome = loop.run(
        model, planned, loop.HeldOut(run.held, run.train), opts, folder, resume, progress, callbacks
    )
    model.save_pretrained(str(run.out), create_model_card=False)
    _mark_matryoshka(run.out, opts.matryoshka)
    after = evaluate(_encoder(Embedder(str(run.out), compute="fp32")), run.held, run.train)
    report = _report(run, before, after, planned.loss_name, planned.size, outcome, resume)
    from embedbox.tasks.train_card import write_card

    write_card(run.out, report, run.source)
    _write_json(run.out / REPORT_FILE, report.to_dict())
    if not opts.keep_checkpoints:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _report(
    run: _Run,
    before: dict[str, float],
    after: dict[str, float],
    loss: str,
    rows: int,
    outcome: Outcome,
    resume: Path | None,
) -> TrainReport:
    from embedbox.tasks.train_loop import checkpoint_step

    metric = HEADLINE[run.train.objective]
    better = after[metric] > before[metric]
    epochs = outcome.epochs or None
    return TrainReport(
        base=str(run.base),
        output=str(run.out),
        objective=run.train.objective,
        loss=loss,
        train_examples=len(run.train),
        train_rows=rows,
        held_out=len(run.held),
        held_out_source=run.held_source,
        metric=metric,
        before=before,
        after=after,
        better=better,
        recommended=str(run.out) if better else str(run.base),
        steps=outcome.steps,
        epochs=outcome.epochs,
        seconds=round(outcome.train_seconds, 1),
        seconds_per_epoch=round(outcome.train_seconds / epochs, 1) if epochs else None,
        peak_memory_mib=round(_peak_rss_mib(), 1),
        resumed_from_step=checkpoint_step(resume) if resume else None,
        kept_step=outcome.best_step,
        matryoshka_dims=list(run.opts.matryoshka),
        settings=_settings(run.opts),
        history=outcome.history,
        notes=run.notes,
    )


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's thread count for the run only (it is process-wide)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _require_training_libraries() -> None:
    import importlib.util

    missing = [
        m
        for m in ("sentence_transformers", "datasets", "accelerate", "sklearn")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise EmbedboxError(
            f"training needs {', '.join(missing)}; install them with `pip install 'embedbox[train]'`"
        )


def _encoder(emb: Any) -> Callable[[list[str]], Any]:
    import warnings

    def encode(texts: list[str]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # evaluation truncates long texts as training does
            return emb.embed(texts, truncate=False)

    return encode


def _check_dims(dims: Sequence[int], base_path: Path) -> tuple[int, ...]:
    """Matryoshka sizes, largest first, with the model's full size included."""
    if not dims:
        return ()
    from embedbox.models.text import read_model_info

    full = read_model_info(base_path).dim
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= full:
            raise InputError(f"matryoshka size {d!r} must be a whole number from 1 to {full}")
    return tuple(sorted({full, *dims}, reverse=True))


def _mark_matryoshka(out: Path, dims: tuple[int, ...]) -> None:
    """Record the trained sizes in config_sentence_transformers.json (sentence-transformers
    ignores the key; embedbox reads it and then does not warn about `dimensions=`)."""
    if not dims:
        return
    path = out / "config_sentence_transformers.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    config["matryoshka_dims"] = list(dims)
    _write_json(path, config)


def _fingerprint(base_path: Path, data: str | Path, opts: TrainOptions) -> str:
    """Same base, same data (by content), same settings -> same run (so it may resume)."""
    h = hashlib.sha256(str(base_path).encode())
    for path in (data, opts.eval_data):
        if path is not None:
            with Path(path).open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
    h.update(json.dumps(_settings(opts), sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _settings(opts: TrainOptions) -> dict[str, Any]:
    """The options that shape the result (not where or how fast it runs)."""
    skip = {"overwrite", "keep_checkpoints", "threads"}
    out = {k: v for k, v in asdict(opts).items() if k not in skip}
    out["eval_data"] = str(opts.eval_data) if opts.eval_data is not None else None
    out["matryoshka"] = list(opts.matryoshka)
    return out


def _prepare_output(out: Path, run_id: str, overwrite: bool) -> dict[str, Any] | None:
    """The saved record of this run when its checkpoints are there to resume; None to start
    afresh (refusing to overwrite anything that is not an earlier embedbox training output)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; the output must be a folder")
    run_file = out / "checkpoints" / RUN_FILE
    saved: dict[str, Any] | None = None
    if run_file.is_file():
        try:
            saved = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            saved = None
    if saved is not None and saved.get("fingerprint") == run_id and not overwrite:
        return saved
    if out.is_dir() and any(out.iterdir()):
        ours = run_file.is_file() or (out / REPORT_FILE).is_file()
        if not ours:
            raise Conflict(
                f"{out} is not empty and is not an embedbox training output; choose a new or "
                "empty folder"
            )
        if not overwrite:
            what = (
                "checkpoints of another run (other base, data or settings)"
                if run_file.is_file()
                else "a model trained by embedbox"
            )
            raise Conflict(
                f"{out} already holds {what}; pass --overwrite to replace it or choose another "
                "folder"
            )
        shutil.rmtree(out)
    return None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
