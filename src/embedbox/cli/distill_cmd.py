"""`embedbox distill`: a static (model2vec-style) model from a sentence model."""

from __future__ import annotations

from pathlib import Path

import typer

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.cli.common import JsonOpt, app, console, get_embedder, print_json, progress_bar


@app.command()
def distill(
    model: str = typer.Argument(DEFAULT_TEXT_MODEL, help="The sentence model to distil."),
    output: Path = typer.Option(..., "--output", "-o", help="A new folder for the static model."),
    dims: int = typer.Option(256, "--dims", help="PCA dimensions of the table (0: keep all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Distil MODEL into a static table: every text becomes the mean of its tokens' vectors.

    Hundreds of times faster than the transformer, lower in quality (measure both with
    `embedbox eval`). The folder loads anywhere a model name does (--model FOLDER) and in
    model2vec."""
    from embedbox.tasks.distill import distill as run

    emb = get_embedder(model, "fp32")  # the table is built once: build it faithfully
    with progress_bar("embedding the vocabulary") as update:
        report = run(emb, output, dims=dims or None, progress=update)
    summary = {
        "model": emb.name,
        "output": str(report.path),
        "vocabulary": report.vocabulary,
        "dims": report.dims,
        "seconds": round(report.seconds, 1),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"distilled {emb.name} into {report.path}: {report.vocabulary} tokens x "
            f"{report.dims} dims in {report.seconds:.0f} s"
        )
