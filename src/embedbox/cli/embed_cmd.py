"""`embedbox embed`, `embedbox similarity`."""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from embedbox.cli.common import (
    BackendOpt,
    ComputeOpt,
    JsonOpt,
    ModelOpt,
    app,
    cell,
    console,
    err_console,
    get_embedder,
    print_json,
    progress_bar,
)
from embedbox.errors import InputError
from embedbox.inputs import check_unicode
from embedbox.io import WRITE_FORMATS, detect_format, read_stdin_lines, read_texts, write_vectors


@app.command()
def embed(
    texts: list[str] = typer.Argument(None, help="Texts to embed (or use --input / stdin)."),
    input: Path | None = typer.Option(
        None, "--input", "-i", help="txt (one text per line), jsonl, csv or parquet."
    ),
    text_field: str = typer.Option(
        "text", "--text-field", "--field", help="Record field holding the text (--field: old name)."
    ),
    id_field: str | None = typer.Option(
        None,
        "--id-field",
        help="Record field holding the id written to --output (default: 'id' if the records "
        "have one, else the position).",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write .npy, .jsonl, .parquet, .csv or .tsv."
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
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="At most this many texts per forward pass (default 128)."
    ),
    normalize: bool = typer.Option(
        True, "--normalize/--no-normalize", help="L2-normalise (when the model does)."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda or cuda:N."),
    as_json: bool = JsonOpt,
) -> None:
    """Embed texts and print or save the vectors.

    Texts come from arguments, --input FILE or stdin; an input with no texts is an error.
    Messages name a text by where it came from: FILE:LINE, stdin:LINE or argument N."""
    items, places, ids = _gather(texts, input, text_field, id_field)
    # Cheap checks first, so a typo fails before the model loads.
    from embedbox.quantize import check_precision

    check_precision(precision)
    _check_texts(items, places)
    if long_text not in ("truncate", "chunk", "error"):
        raise InputError(f"--long-text must be truncate, chunk or error, not {long_text!r}")
    if output is not None:
        detect_format(output, WRITE_FORMATS)
    if batch_size is not None and batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    options: dict[str, Any] = {"device": device} if device else {}
    if batch_size is not None:
        options["max_batch_size"] = batch_size
    emb = get_embedder(model, compute, threads, backend, **options)
    with (
        warnings.catch_warnings(record=True),
        progress_bar("embedding") as update,
        _named(places),
    ):
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
            normalize=None if normalize else False,
            progress=update,
        )
    if result.truncated:
        err_console.print(
            f"warning: {len(result.truncated)} text(s) longer than {emb.max_tokens} tokens were "
            f"truncated ({', '.join(places[i] for i in result.truncated[:10])}"
            f"{', ...' if len(result.truncated) > 10 else ''}); use --long-text chunk to embed "
            "all text",
            highlight=False,
            markup=False,
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
        write_vectors(output, result.vectors, texts=items, ids=ids)
        summary["output"] = str(output)
        if as_json:
            print_json(summary)
        else:
            console.print(f"wrote {len(items)} x {summary['dim']} {precision} vectors to {output}")
        return
    if as_json:
        print_json({**summary, **({"ids": ids} if ids else {}), "embeddings": result.vectors})
        return
    table = Table(title=Text(f"{emb.name}: {len(items)} x {summary['dim']} ({precision})"))
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("text", min_width=10, max_width=50)
    table.add_column("vector (first 6)", no_wrap=True)
    for i, (text, vec) in enumerate(zip(items, result.vectors, strict=True)):
        if i == 20:
            table.add_row("…", f"{len(items) - 20} more", "")
            break
        values = vec[:6].tolist()
        shown = " ".join(f"{v:+.3f}" if isinstance(v, float) else str(v) for v in values)
        table.add_row(str(i + 1), cell(text), shown)
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
    table = Table(title=Text(f"{emb.info.similarity_fn} similarity ({emb.name})"))
    table.add_column("", min_width=8, max_width=44)
    for i in range(len(texts)):
        table.add_column(Text(f"[{i + 1}]"), justify="right", no_wrap=True)
    for i, text in enumerate(texts):
        table.add_row(cell(f"[{i + 1}] {text}"), *(f"{v:.3f}" for v in matrix[i].tolist()))
    console.print(table)


def _gather(
    texts: list[str] | None, input: Path | None, text_field: str, id_field: str | None
) -> tuple[list[str], list[str], list[str] | None]:
    """-> (texts, where each came from, ids or None)."""
    if texts and input is not None:
        raise InputError("give texts as arguments or --input, not both")
    if input is not None:
        found = read_texts(input, text_field, id_field)
        return found.texts, found.places, found.ids
    if id_field is not None:
        raise InputError("--id-field names a field of the records of --input FILE")
    if texts:
        return list(texts), [f"argument {n}" for n in range(1, len(texts) + 1)], None
    if not sys.stdin.isatty():
        lines = read_stdin_lines()
        if not lines:
            raise InputError("no texts on stdin: it was empty or blank")
        return [t for _, t in lines], [f"stdin:{n}" for n, _ in lines], None
    raise InputError("no texts: pass them as arguments, with --input FILE, or on stdin")


def _check_texts(texts: list[str], places: list[str]) -> None:
    for text, where in zip(texts, places, strict=True):
        if not text.strip():
            raise InputError(f"{where} is empty or whitespace only; remove it")
        check_unicode(text, where)


_ITEM = re.compile(r"\bitem (\d+)\b")


@contextmanager
def _named(places: list[str]) -> Iterator[None]:
    """Library errors name a text by its index ("item 3"); here, by where it came from."""
    try:
        yield
    except InputError as exc:

        def name(match: re.Match[str]) -> str:
            i = int(match.group(1))
            return places[i] if i < len(places) else match.group(0)

        message = _ITEM.sub(name, str(exc))
        if message == str(exc):
            raise
        raise type(exc)(message) from exc
