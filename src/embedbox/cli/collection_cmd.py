"""`embedbox collection create|list|info|drop`, `add`, `search`, `get`, `delete`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.cli.common import (
    DataDirOpt,
    JsonOpt,
    WhereOpt,
    add_id_column,
    app,
    cell,
    console,
    err_console,
    fail,
    parse_where,
    print_json,
    progress_bar,
)
from embedbox.cli.inputs import TextFieldOpt
from embedbox.errors import InputError

collection_app = typer.Typer(
    help="Create, list, inspect and drop collections.", no_args_is_help=True
)
app.add_typer(collection_app, name="collection")


def _open(name: str, data_dir: Path | None, **kwargs: Any) -> Any:
    from embedbox.store.collection import Collection

    return Collection.open(name, data_dir=data_dir, **kwargs)


@collection_app.command("create")
def create(
    name: str = typer.Argument(..., help="Collection name (or a folder path)."),
    model: str = typer.Option(DEFAULT_TEXT_MODEL, "--model", "-m", help="Model for its vectors."),
    kind: str | None = typer.Option(None, "--kind", help="text | image | word (default: model's)."),
    dim: int | None = typer.Option(None, "--dim", help="Vector size (default: model's)."),
    precision: str = typer.Option("float32", "--precision", help="Storage: float32 | float16."),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize", help="Cosine vs dot."),
    chunk: bool = typer.Option(True, "--chunk/--no-chunk", help="Split long texts into windows."),
    chunk_tokens: int | None = typer.Option(None, "--chunk-tokens", help="Window size."),
    chunk_overlap: int = typer.Option(32, "--chunk-overlap", help="Tokens shared by windows."),
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create an empty collection."""
    from embedbox.errors import Conflict
    from embedbox.store.chunking import ChunkOptions
    from embedbox.store.collection import Collection
    from embedbox.store.paths import DB_FILE, collection_dir, resolve_data_dir

    folder, label = collection_dir(name, resolve_data_dir(data_dir))
    if (folder / DB_FILE).exists():
        raise Conflict(f"collection {label!r} already exists at {folder}")
    chunking = ChunkOptions(chunk, chunk_tokens, chunk_overlap)
    with Collection.open(
        name,
        model,
        data_dir=data_dir,
        create=True,
        kind=kind,
        dim=dim,
        precision=precision,
        normalize=normalize,
        chunking=chunking,
    ) as col:
        info = col.info()
    if as_json:
        print_json(info)
    else:
        console.print(f"created collection {info['name']!r} ({info['model']}) at {info['path']}")


@collection_app.command("list")
def list_(data_dir: Path | None = DataDirOpt, as_json: bool = JsonOpt) -> None:
    """List collections with their model and document count."""
    from embedbox.store.collection import list_collections

    rows = list_collections(data_dir)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no collections yet; create one with `embedbox collection create NAME`")
        return
    table = Table(title="collections")
    table.add_column("name", no_wrap=True)
    table.add_column("model", overflow="fold")
    for col in ("dim", "count", "chunks"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("path", overflow="fold")
    for r in rows:
        if "error" in r:
            error = Text(r["error"], style="red")
            table.add_row(r["name"], error, "", "", "", r["path"])
            continue
        table.add_row(
            r["name"], r["model"], str(r["dim"]), str(r["count"]), str(r["chunks"]), r["path"]
        )
    console.print(table)


@collection_app.command("info")
def info(
    name: str = typer.Argument(...), data_dir: Path | None = DataDirOpt, as_json: bool = JsonOpt
) -> None:
    """Settings and size of a collection."""
    with _open(name, data_dir) as col:
        data = col.info()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(f"[bold]{key}[/bold]: {value}", highlight=False)


@collection_app.command("check")
def check(
    name: str = typer.Argument(...), data_dir: Path | None = DataDirOpt, as_json: bool = JsonOpt
) -> None:
    """Run SQLite's integrity check on a collection's database (exit 1 when it is damaged)."""
    from embedbox.errors import StorageError

    try:
        with _open(name, data_dir, read_only=True) as col:
            problems = col.check()
            path = str(col.path)
    except StorageError as exc:
        problems, path = [str(exc)], name
    if as_json:
        print_json({"name": name, "ok": not problems, "problems": problems})
    elif not problems:
        console.print(f"{name}: ok ({path})")
    if problems:
        shown = "; ".join(problems[:3]) + (
            f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        )
        fail(f"collection {name!r} is damaged: {shown}", code=1)


@collection_app.command("drop")
def drop(
    name: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete a collection and all its files."""
    from embedbox.store.collection import drop_collection

    with _open(name, data_dir) as col:
        count = col.count()
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"refusing to drop {name!r} ({count} documents) without --yes")
        typer.confirm(f"drop collection {name!r} with {count} documents?", abort=True)
    drop_collection(name, data_dir)
    if as_json:
        print_json({"dropped": name, "count": count})
    else:
        console.print(f"dropped {name!r} ({count} documents)")


@app.command()
def add(
    collection: str = typer.Argument(..., help="Collection name (created if missing)."),
    paths: list[Path] = typer.Argument(
        None, help="Files or folders: txt, md, jsonl, csv, parquet."
    ),
    id_field: str | None = typer.Option(None, "--id-field", help="Record field with the id."),
    text_field: str = typer.Option("text", "--text-field", help="Record field with the text."),
    metadata_field: list[str] = typer.Option(
        None, "--metadata-field", help="Keep only these fields as metadata (repeatable)."
    ),
    vector_field: str | None = typer.Option(
        None, "--vector-field", help="Field with a precomputed vector (e.g. embedding)."
    ),
    unit: str = typer.Option("auto", "--unit", help="txt files: auto | line | file."),
    infer_types: bool = typer.Option(
        True,
        "--infer-types/--no-infer-types",
        help="CSV/TSV columns and front matter: numbers and true/false stored as such "
        "(--no-infer-types keeps every value as text).",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Documents per commit."),
    model: str | None = typer.Option(
        None, "--model", "-m", help=f"Model when creating (default {DEFAULT_TEXT_MODEL})."
    ),
    from_embeddings: Path | None = typer.Option(
        None, "--from-embeddings", help="Output folder of embed-dataset: add without embedding."
    ),
    images: list[Path] = typer.Option(
        None, "--images", help="Image files or folders (image collection)."
    ),
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Ingest files/folders into a collection (resumable: unchanged documents are skipped).

    `--images DIR` embeds image files/folders into an image collection instead."""
    from embedbox.store.ingest import IngestOptions, check_input, ingest

    if images:
        if paths or from_embeddings is not None:
            raise InputError("--images cannot be combined with text paths or --from-embeddings")
        from embedbox.cli.images_cmd import run_add_images

        run_add_images(
            collection,
            images,
            model=model,
            data_dir=data_dir,
            as_json=as_json,
            batch_size=batch_size,
        )
        return
    if from_embeddings is not None:
        from embedbox.cli.dataset_cmd import add_from_embeddings

        add_from_embeddings(collection, from_embeddings, paths, model, data_dir, as_json)
        return
    if not paths:
        raise InputError("give files or folders to add, --images DIR or --from-embeddings DIR")

    opts = IngestOptions(
        id_field=id_field,
        text_field=text_field,
        metadata_fields=tuple(metadata_field) if metadata_field else None,
        vector_field=vector_field,
        text_unit=unit,  # type: ignore[arg-type]
        batch_size=batch_size,
        infer_types=infer_types,
    )
    check_input(paths, opts)  # before the collection is created: a bad input leaves none behind
    with _open(collection, data_dir, model=model, create=True) as col:
        with progress_bar(f"adding to {col.name}") as update:
            report = ingest(col, paths, opts, progress=update)
        total = col.count()
    data = {**report.to_dict(), "collection": col.name, "count": total}
    if as_json:
        print_json(data)
        return
    err_console.print(
        f"{report.documents} documents from {report.files} file(s) in {report.seconds:.1f}s: "
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged"
        + (f", {report.skipped_empty} empty skipped" if report.skipped_empty else "")
        + f"; {col.name!r} now holds {total}"
    )


@app.command()
def search(
    collection: str = typer.Argument(...),
    queries: list[str] = typer.Argument(None, help="Search text; several give a list each."),
    input: Path | None = typer.Option(
        None,
        "--input",
        "-i",
        help="Queries from a file: txt, jsonl, csv, parquet, or .npy vectors.",
    ),
    text_field: str = TextFieldOpt,
    k: int = typer.Option(10, "-k", "--k", help="How many results."),
    where: str | None = WhereOpt,
    where_document: str | None = typer.Option(
        None, "--where-document", help='Text filter as JSON, e.g. \'{"$contains": "Sydney"}\'.'
    ),
    mode: str = typer.Option("semantic", "--mode", help="semantic | keyword | hybrid."),
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Search a collection by meaning, keywords or both: one query, several, or a file of
    queries or vectors (embedded in one pass)."""
    labels, query = _queries(queries or [], input, text_field)
    with _open(collection, data_dir) as col:
        found = col.search(
            query,
            k=k,
            where=parse_where(where),
            where_document=parse_where(where_document, "--where-document"),
            mode=mode,  # type: ignore[arg-type]
        )
    if isinstance(query, str):
        if as_json:
            print_json([h.to_dict() for h in found])
        else:
            _print_hits(f"{mode} search in {collection!r}: {query}", found)
        return
    if as_json:
        print_json(
            [
                {"query": q, "hits": [h.to_dict() for h in hits]}
                for q, hits in zip(labels, found, strict=True)
            ]
        )
        return
    for q, hits in zip(labels, found, strict=True):
        _print_hits(f"{mode} search in {collection!r}: {q}", hits)


def _queries(texts: list[str], input: Path | None, text_field: str) -> tuple[list[str], Any]:
    """(a label per query, what `Collection.search` takes): one text, a list, or vectors."""
    import numpy as np

    if texts and input is not None:
        raise InputError("give queries as arguments or --input FILE, not both")
    if input is None:
        if not texts:
            raise InputError("give a query (or several), or --input FILE")
        return texts, texts[0] if len(texts) == 1 else texts
    if input.suffix.lower() == ".npy":
        vectors = np.load(input, allow_pickle=False)
        vectors = vectors[None] if vectors.ndim == 1 else vectors
        if vectors.ndim != 2 or not len(vectors):
            raise InputError(f"{input}: expected vectors of shape (n, dim), got {vectors.shape}")
        return [f"{input.name}[{i}]" for i in range(len(vectors))], vectors.astype(np.float32)
    from embedbox.io import read_texts

    found = read_texts(input, text_field)
    return found.texts, found.texts


def _print_hits(title: str, hits: list[Any]) -> None:
    if not hits:
        console.print(f"{title}: no results", markup=False, highlight=False)
        return
    table = Table(title=Text(title))
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    add_id_column(table, [h.id for h in hits])
    table.add_column("text", min_width=12)
    table.add_column("metadata", min_width=8)
    for rank, hit in enumerate(hits, 1):
        meta = json.dumps(hit.metadata, ensure_ascii=False) if hit.metadata else ""
        table.add_row(str(rank), f"{hit.score:.4f}", Text(hit.id), cell(hit.text), cell(meta))
    console.print(table)


@app.command()
def get(
    collection: str = typer.Argument(...),
    ids: list[str] = typer.Argument(..., help="Document ids."),
    vectors: bool = typer.Option(False, "--vectors", help="Include document vectors."),
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show stored documents by id."""
    with _open(collection, data_dir) as col:
        items = col.get(ids, include_vectors=vectors)
    if as_json:
        print_json([item.to_dict() for item in items])
        return
    for item in items:
        console.print(f"[bold]{item.id}[/bold] {json.dumps(item.metadata)}", highlight=False)
        console.print(item.text, highlight=False, markup=False)


@app.command()
def delete(
    collection: str = typer.Argument(...),
    ids: list[str] = typer.Argument(None, help="Document ids to delete."),
    where: str | None = WhereOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete documents by id and/or metadata filter."""
    if not ids and where is None:
        raise InputError("give ids to delete or --where (--where '{}' deletes everything)")
    with _open(collection, data_dir) as col:
        n = col.delete(ids=ids or None, where=parse_where(where))
        left = col.count()
    if as_json:
        print_json({"deleted": n, "count": left})
    else:
        console.print(f"deleted {n} document(s); {left} left")


@collection_app.command("reembed")
def reembed(
    name: str = typer.Argument(..., help="Collection to re-embed."),
    model: str = typer.Option(
        ..., "--model", "-m", help="The new model: catalog name, registered name or folder."
    ),
    batch: int = typer.Option(256, "--batch", help="Chunks embedded (and committed) at a time."),
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Re-embed the stored texts with another model, then switch to it in one commit.

    Searches keep working meanwhile (on the old model until the switch); an interrupted run
    resumes when started again with the same model.
    """
    with (
        _open(name, data_dir) as col,
        progress_bar(f"re-embedding {name}", enabled=not as_json) as update,
    ):
        report = col.reembed(model, batch=batch, progress=update)
    if as_json:
        print_json(report.to_dict())
        return
    resumed = f", {report.resumed} from an earlier run" if report.resumed else ""
    late = f", {report.caught_up} written meanwhile" if report.caught_up else ""
    cut = f"; {report.truncated} chunks longer than the new model's window were truncated"
    console.print(
        f"re-embedded {report.chunks} chunks of {report.collection!r} with {report.new_model} "
        f"(dim {report.new_dim}) in {report.seconds:.1f}s{resumed}{late}"
        + (cut if report.truncated else "")
    )
