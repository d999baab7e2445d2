"""`embedbox embed`, `embedbox similarity`, `embedbox models`."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from embedbox import catalog
from embedbox.cli.common import (
    BackendOpt,
    ComputeOpt,
    JsonOpt,
    ModelOpt,
    app,
    console,
    err_console,
    get_embedder,
    print_json,
    progress_bar,
)
from embedbox.embed import validate_texts
from embedbox.errors import InputError
from embedbox.io import WRITE_FORMATS, detect_format, read_stdin_lines, read_texts, write_vectors
from embedbox.quantize import check_precision


@app.command()
def embed(
    texts: list[str] = typer.Argument(None, help="Texts to embed (or use --input / stdin)."),
    input: Path | None = typer.Option(
        None, "--input", "-i", help="txt (one text per line), jsonl, csv or parquet."
    ),
    field: str = typer.Option("text", "--field", help="Record field holding the text."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write .npy, .jsonl or .parquet."
    ),
    model: str = ModelOpt,
    dimensions: int | None = typer.Option(
        None, "--dimensions", help="Matryoshka: keep the first N dims, re-normalised."
    ),
    precision: str = typer.Option(
        "float32", "--precision", help="float32 | float16 | int8 | uint8 | binary | ubinary."
    ),
    compute: str = ComputeOpt,
    backend: str = BackendOpt,
    prompt: str | None = typer.Option(None, "--prompt", help="Literal text put before each input."),
    prompt_name: str | None = typer.Option(
        None, "--prompt-name", help="A prompt the model defines, e.g. query."
    ),
    input_type: str | None = typer.Option(
        None, "--input-type", help="query | document (picks the model's prompt or task)."
    ),
    task: str | None = typer.Option(None, "--task", help="Task adapter (jina-embeddings-v3)."),
    long_text: str = typer.Option("truncate", "--long-text", help="truncate | chunk | error."),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    as_json: bool = JsonOpt,
) -> None:
    """Embed texts and print or save the vectors."""
    items = _gather(texts, input, field)
    # Cheap checks first, so a typo fails before the model loads.
    check_precision(precision)
    validate_texts(items, allow_empty=False)
    if long_text not in ("truncate", "chunk", "error"):
        raise InputError(f"--long-text must be truncate, chunk or error, not {long_text!r}")
    if output is not None:
        detect_format(output, WRITE_FORMATS)
    emb = get_embedder(model, compute, threads, backend)
    with warnings.catch_warnings(record=True), progress_bar("embedding") as update:
        result = emb.encode(
            items,
            prompt=prompt,
            prompt_name=prompt_name,
            input_type=input_type,  # type: ignore[arg-type]
            task=task,
            dimensions=dimensions,
            precision=precision,
            truncate="error" if long_text == "error" else True,
            long_text="chunk" if long_text == "chunk" else "truncate",
            progress=update,
        )
    if result.truncated:
        err_console.print(
            f"warning: {len(result.truncated)} text(s) longer than {emb.max_tokens} tokens were "
            f"truncated (items {result.truncated[:10]}); use --long-text chunk to embed all text"
        )
    summary: dict[str, Any] = {
        "model": emb.name,
        "backend": emb.backend,
        "compute": emb.compute,
        "count": len(items),
        "dim": int(result.vectors.shape[1]) if result.vectors.ndim == 2 else 0,
        "precision": precision,
        "tokens": result.total_tokens,
        "truncated": result.truncated,
    }
    if output is not None:
        write_vectors(output, result.vectors, texts=items)
        summary["output"] = str(output)
        if as_json:
            print_json(summary)
        else:
            console.print(f"wrote {len(items)} x {summary['dim']} {precision} vectors to {output}")
        return
    if as_json:
        print_json({**summary, "embeddings": result.vectors})
        return
    table = Table(title=f"{emb.name}: {len(items)} x {summary['dim']} ({precision})")
    table.add_column("#", justify="right")
    table.add_column("text", overflow="ellipsis", max_width=50, no_wrap=True)
    table.add_column("vector (first 6)")
    for i, (text, vec) in enumerate(zip(items, result.vectors, strict=True)):
        if i == 20:
            table.add_row("…", f"{len(items) - 20} more", "")
            break
        table.add_row(str(i), text, " ".join(f"{v:+.3f}" for v in vec[:6].tolist()))
    console.print(table)


@app.command()
def similarity(
    texts: list[str] = typer.Argument(..., help="Two or more texts."),
    model: str = ModelOpt,
    compute: str = ComputeOpt,
    backend: str = BackendOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Pairwise similarity of texts as a table."""
    if len(texts) < 2:
        raise InputError("similarity needs at least two texts")
    emb = get_embedder(model, compute, None, backend)
    matrix = emb.similarity(texts)
    if as_json:
        print_json({"model": emb.name, "texts": texts, "matrix": matrix.round(6)})
        return
    table = Table(title=f"{emb.info.similarity_fn} similarity ({emb.name})")
    table.add_column("")
    for i in range(len(texts)):
        table.add_column(f"[{i}]", justify="right")
    for i, text in enumerate(texts):
        label = f"[{i}] {text[:40]}{'…' if len(text) > 40 else ''}"
        table.add_row(label, *(f"{v:.3f}" for v in matrix[i].tolist()))
    console.print(table)


@app.command()
def models(as_json: bool = JsonOpt) -> None:
    """Known models and whether their weights are on this machine."""
    rows: list[dict[str, Any]] = []
    for spec in catalog.CATALOG:
        path = spec.local_path()
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "dim": spec.dim,
                "max_tokens": spec.max_tokens,
                "pooling": spec.pooling,
                "prompts": spec.prompts,
                "tasks": list(spec.tasks),
                "available": path is not None,
                "path": str(path) if path else None,
                "source": spec.where(),
                "description": spec.description,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title="embedbox models")
    for col in ("name", "kind", "dim", "max tokens", "available", "where / how to get"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"],
            str(r["dim"]),
            str(r["max_tokens"]),
            "[green]yes[/green]" if r["available"] else "[dim]no[/dim]",
            r["path"] or r["source"],
        )
    console.print(table)


def _gather(texts: list[str] | None, input: Path | None, field: str) -> list[str]:
    if texts and input is not None:
        raise InputError("give texts as arguments or --input, not both")
    if input is not None:
        return read_texts(input, field)
    if texts:
        return list(texts)
    if not sys.stdin.isatty():
        lines = read_stdin_lines()
        if lines:
            return lines
    raise InputError("no texts: pass them as arguments, with --input FILE, or on stdin")
