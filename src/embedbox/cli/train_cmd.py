"""`embedbox train BASE --data FILE -o DIR`: fine-tune a model and compare it with the base."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from embedbox.cli.common import JsonOpt, app, console, err_console, print_json, progress_bar
from embedbox.errors import InputError


def _dims(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"--matryoshka takes sizes like 384,256,128,64, not {text!r}") from None


@app.command("train")
def train_command(
    base: str = typer.Argument(
        ..., help="Model to start from: catalog name, registered name or folder."
    ),
    data: Path = typer.Option(..., "--data", "-d", help="Training data: jsonl, csv or parquet."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the trained model."),
    objective: str | None = typer.Option(
        None, "--objective", help="pairs | scored | labels (default: from the data's fields)."
    ),
    eval_data: Path | None = typer.Option(
        None, "--eval-data", help="Held-out examples (default: part of --data is held out)."
    ),
    eval_fraction: float = typer.Option(0.1, "--eval-fraction", help="Share of --data held out."),
    anchor_field: str | None = typer.Option(None, "--anchor-field", help="Pairs: first text."),
    positive_field: str | None = typer.Option(None, "--positive-field", help="Pairs: second text."),
    negative_field: str | None = typer.Option(None, "--negative-field", help="Pairs: a negative."),
    score_field: str | None = typer.Option(None, "--score-field", help="Scored pairs: 0-1 or 0-5."),
    text_field: str | None = typer.Option(None, "--text-field", help="Labels: the text."),
    label_field: str | None = typer.Option(None, "--label-field", help="Labels: the label."),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the training data."),
    batch_size: int = typer.Option(32, "--batch-size", help="Examples per step."),
    learning_rate: float = typer.Option(2e-5, "--lr", help="Peak learning rate."),
    warmup: float = typer.Option(0.1, "--warmup", help="Warm-up, as a fraction of the steps."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    evals_per_epoch: int = typer.Option(
        1, "--evals-per-epoch", help="Held-out evaluations (and checkpoints) per epoch."
    ),
    patience: int | None = typer.Option(
        None, "--patience", help="Stop after this many evaluations without a gain."
    ),
    keep: str = typer.Option("best", "--keep", help="best | last checkpoint."),
    matryoshka: str | None = typer.Option(
        None, "--matryoshka", help="Also train these vector sizes, e.g. 384,256,128,64."
    ),
    label_loss: str = typer.Option(
        "contrastive", "--label-loss", help="Labels: contrastive (SetFit pairs) | triplet."
    ),
    pairs_per_text: int = typer.Option(4, "--pairs-per-text", help="Labels: pairs per text."),
    mine_negatives: bool = typer.Option(
        False, "--mine-negatives", help="Pairs: find a hard negative for each with the base model."
    ),
    max_seq_length: int | None = typer.Option(None, "--max-seq-length", help="Token limit."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto | fp32 | bf16 (autocast; auto: where native)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, shuffling and init."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier output."),
    keep_checkpoints: bool = typer.Option(
        False, "--keep-checkpoints", help="Keep <output>/checkpoints after training."
    ),
    register: str | None = typer.Option(
        None, "--register", help="Register the result under this name when it is better."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Fine-tune BASE on your data; report held-out metrics before and after.

    Running the same command again after an interruption resumes from the last checkpoint.
    """
    from embedbox.tasks.train import TrainOptions, train
    from embedbox.tasks.train_data import Fields

    fields = Fields(
        anchor_field, positive_field, negative_field, score_field, text_field, label_field
    )
    options = TrainOptions(
        objective=objective,  # type: ignore[arg-type]  # checked by read_examples
        fields=fields,
        eval_data=eval_data,
        eval_fraction=eval_fraction,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup=warmup,
        max_steps=max_steps,
        evals_per_epoch=evals_per_epoch,
        patience=patience,
        keep=keep,  # type: ignore[arg-type]
        matryoshka=_dims(matryoshka),
        label_loss=label_loss,  # type: ignore[arg-type]
        pairs_per_text=pairs_per_text,
        mine_negatives=mine_negatives,
        max_seq_length=max_seq_length,
        threads=threads,
        precision=precision,  # type: ignore[arg-type]  # checked by TrainOptions.check
        seed=seed,
        overwrite=overwrite,
        keep_checkpoints=keep_checkpoints,
    )
    with progress_bar("training", enabled=not as_json) as update:
        report = train(base, data, output, options, progress=update)
    registered = None
    if register is not None and report.better:
        from embedbox.models.registry import register as add

        registered = str(add(register, report.output))
    if as_json:
        print_json({**report.to_dict(), "registered": registered})
        return
    _print(report.to_dict())
    if register is not None and not report.better:
        err_console.print(f"not registered as {register!r}: the model is not better than the base")
    elif registered is not None:
        console.print(f"registered as {register!r}")


def _print(report: dict[str, Any]) -> None:
    table = Table(title=f"held-out: {report['held_out_source']}")
    for col in ("metric", "base", "fine-tuned", "change"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, before in report["before"].items():
        after = report["after"][name]
        table.add_row(name, f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}")
    console.print(
        f"trained {report['objective']} ({report['loss']}) on {report['train_examples']} "
        f"examples: {report['steps']} steps, {report['seconds']:.0f} s -> {report['output']}"
    )
    if report["resumed_from_step"] is not None:
        console.print(f"resumed from step {report['resumed_from_step']}")
    console.print(table)
    console.print(report["verdict"], style="bold" if report["better"] else "bold yellow")
