"""`embedbox embed-dataset`: embed files or folders into resumable Parquet shards."""

from __future__ import annotations

from pathlib import Path

import typer

from embedbox.cli.common import (
    ComputeOpt,
    JsonOpt,
    ModelOpt,
    app,
    console,
    print_json,
    progress_bar,
)


@app.command("embed-dataset")
def embed_dataset(
    inputs: list[Path] = typer.Argument(..., help="Parquet, JSONL, CSV or txt files or folders."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for shards and manifest."),
    engine: str = typer.Option("local", "--engine", help="local (process pool) | ray."),
    address: str | None = typer.Option(
        None, "--address", help="Existing Ray cluster (e.g. ray://host:10001 or auto)."
    ),
    text_column: str = typer.Option(
        "text",
        "--text-field",
        "--text-column",
        help="Column with the text (old name: --text-column).",
    ),
    id_column: str | None = typer.Option(
        None,
        "--id-field",
        "--id-column",
        help="Column with the id (default: FILE:ROW; old name: --id-column).",
    ),
    keep: list[str] = typer.Option(
        None, "--keep", help="Columns copied to the output (repeatable; default: all)."
    ),
    model: str = ModelOpt,
    compute: str = ComputeOpt,
    precision: str = typer.Option(
        "float32", "--precision", help="float32 | float16 | int8 | uint8 | binary | ubinary."
    ),
    dimensions: int | None = typer.Option(
        None, "--dimensions", help="Matryoshka: keep the first N dims, re-normalised."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes / Ray actors (default: one per core or GPU)."
    ),
    threads: int | None = typer.Option(None, "--threads", help="Torch threads per worker."),
    shard_rows: int = typer.Option(10_000, "--shard-rows", help="Rows per output shard."),
    batch_size: int = typer.Option(128, "--batch-size", help="Most texts per forward pass."),
    num_gpus: float | None = typer.Option(
        None, "--num-gpus", help="GPUs per Ray actor (default: 1 where the cluster has GPUs)."
    ),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad row."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Discard an earlier job in --output and start again."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Embed a dataset into Parquet shards (id, vector, kept columns); reruns resume."""
    from embedbox.scale import JobSpec, run_job

    spec = JobSpec(
        inputs=tuple(str(p) for p in inputs),
        output=str(output),
        model=model,
        text_column=text_column,
        id_column=id_column,
        keep=tuple(keep) if keep else None,
        precision=precision,
        dimensions=dimensions,
        compute=compute,
        engine=engine,  # type: ignore[arg-type]
        address=address,
        workers=workers,
        threads=threads,
        shard_rows=shard_rows,
        batch_size=batch_size,
        num_gpus=num_gpus,
        strict=strict,
        overwrite=overwrite,
    )
    with progress_bar("embedding", enabled=engine == "local" and not as_json) as update:
        report = run_job(spec, progress=update)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(
        f"{report.rows} rows embedded ({report.tokens} tokens) in {report.seconds:.1f}s, "
        f"{report.rows_per_s:.1f} rows/s on {report.engine} x{report.workers}; "
        f"{report.skipped_shards} of {report.shards} shards already done; "
        f"{report.total_rows} rows in {report.output}"
        + (
            f"; {report.bad_rows} bad rows listed in {report.errors_file}"
            if report.bad_rows
            else ""
        )
        + (f"; {report.truncated} texts truncated" if report.truncated else ""),
        highlight=False,
    )


def add_from_embeddings(
    collection: str,
    folder: Path,
    paths: list[Path] | None,
    model: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """`embedbox add COLLECTION --from-embeddings DIR`: load a job's output, no re-embedding.

    The output and the collection's model are checked before the collection is created or
    anything is written."""
    from embedbox import catalog
    from embedbox.errors import Conflict, InputError, NotFound
    from embedbox.scale.load import check_output, check_target, load_embeddings_into
    from embedbox.store.collection import Collection

    if paths:
        raise InputError("give files to embed or --from-embeddings DIR, not both")
    output = check_output(folder)
    if model is not None and not catalog.same_model(model, output.model):
        raise Conflict(
            f"{folder} holds {output.model!r} vectors, not {model!r}; drop --model (the "
            "collection takes the output's model) or load another output"
        )
    try:
        col = Collection.open(collection, data_dir=data_dir)
    except NotFound:
        spec = catalog.find(output.model)
        check_target(output, output.model, spec.dim if spec else None, collection)
        col = Collection.open(
            collection, model=output.model, data_dir=data_dir, create=True, dim=output.dim
        )
    with col:
        with progress_bar(f"loading into {col.name}", enabled=not as_json) as update:
            report = load_embeddings_into(col, output, progress=update)
        total = col.count()
    if as_json:
        print_json({**report.to_dict(), "collection": col.name, "count": total})
        return
    console.print(
        f"{report.rows} vectors from {report.shards} shard(s) of {folder}: {report.added} added, "
        f"{report.updated} updated, {report.unchanged} unchanged; {col.name!r} now holds {total}",
        highlight=False,
    )
