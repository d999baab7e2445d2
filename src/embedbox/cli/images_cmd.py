"""`embedbox images embed|classify|similar`: image vectors, ImageNet labels, similar-image search."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from embedbox.catalog import DEFAULT_IMAGE_MODEL
from embedbox.cli.common import (
    DataDirOpt,
    JsonOpt,
    app,
    cell,
    console,
    err_console,
    print_json,
    progress_bar,
)
from embedbox.errors import InputError

if TYPE_CHECKING:
    import numpy as np

images_app = typer.Typer(
    help="Image embeddings (EfficientNet-Lite0 by default; CLIP/SigLIP folders for text-image).",
    no_args_is_help=True,
)
app.add_typer(images_app, name="images")

ImageModelOpt = typer.Option(
    DEFAULT_IMAGE_MODEL, "--model", "-m", help="efficientnet-lite0, or a CLIP/SigLIP folder."
)


def _encoder(model: str) -> Any:
    from embedbox.models.image import load_image_encoder

    if err_console.is_terminal:
        with err_console.status(f"loading {model}…"):
            return load_image_encoder(model)
    return load_image_encoder(model)


def _report_skipped(skipped: list[Any]) -> None:
    for s in skipped[:20]:
        err_console.print(f"skipped {s.item}: {s.reason}", highlight=False, markup=False)
    if len(skipped) > 20:
        err_console.print(f"… and {len(skipped) - 20} more skipped")


@images_app.command()
def embed(
    inputs: list[str] = typer.Argument(..., help="Image files or folders."),
    model: str = ImageModelOpt,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write .npy, .jsonl or .parquet."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Embed images (folders: unreadable files are skipped and reported)."""
    from embedbox.images import embed_images
    from embedbox.io import write_vectors

    enc = _encoder(model)
    with progress_bar("embedding images") as update:
        result = embed_images(inputs, enc, progress=update)  # folders: skip and report
    _report_skipped(result.skipped)
    if not result.names:
        raise InputError("no readable images among the inputs")
    summary: dict[str, Any] = {
        "model": enc.name,
        "count": len(result.names),
        "dim": enc.dim,
        "skipped": [{"item": s.item, "reason": s.reason} for s in result.skipped],
    }
    if output is not None:
        write_vectors(output, result.vectors, texts=result.names)
        if as_json:
            print_json({**summary, "output": str(output)})
        else:
            console.print(f"wrote {len(result.names)} x {enc.dim} vectors to {output}")
        return
    if as_json:
        print_json({**summary, "images": result.names, "embeddings": result.vectors})
        return
    table = Table(title=f"{enc.name}: {len(result.names)} x {enc.dim}")
    table.add_column("image", min_width=12, max_width=50)
    table.add_column("vector (first 6)", no_wrap=True)
    for name, vec in list(zip(result.names, result.vectors, strict=True))[:20]:
        table.add_row(cell(name), " ".join(f"{v:+.3f}" for v in vec[:6].tolist()))
    console.print(table)


@images_app.command()
def classify(
    inputs: list[str] = typer.Argument(..., help="Image files or folders."),
    k: int = typer.Option(3, "--k", "-k", help="Labels per image."),
    as_json: bool = JsonOpt,
) -> None:
    """ImageNet labels from EfficientNet-Lite0 (a check that the model sees what you see)."""
    from embedbox.images import Skipped, image_batches
    from embedbox.models.image import Label, load_classifier

    enc = load_classifier()
    rows: list[tuple[str, list[Label]]] = []
    skipped: list[Skipped] = []
    for part in image_batches(inputs):  # a named bad file is an error; folders skip and report
        if part.images:
            rows += zip(part.names, enc.classify(part.images, k=k), strict=True)
        skipped += part.skipped
    _report_skipped(skipped)
    if as_json:
        print_json(
            [
                {"image": n, "labels": [{"label": x.label, "score": round(x.score, 4)} for x in ls]}
                for n, ls in rows
            ]
        )
        return
    for name, ls in rows:
        console.print(f"{name}: " + ", ".join(f"{x.label} ({x.score:.2f})" for x in ls))


@images_app.command()
def similar(
    query: str | None = typer.Argument(
        None, help="An image file (with --text: a text). Leave out with --id."
    ),
    item_id: str | None = typer.Option(
        None, "--id", help="Search by an item of the collection (it is left out of the answers)."
    ),
    folder: Path | None = typer.Option(None, "--in", help="Search the images in this folder."),
    collection: str | None = typer.Option(None, "--collection", "-c", help="Image collection."),
    data_dir: Path | None = DataDirOpt,
    text: bool = typer.Option(False, "--text", help="QUERY is a text (CLIP/SigLIP models)."),
    k: int = typer.Option(5, "--k", "-k", help="How many results."),
    model: str = ImageModelOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Find similar images in a folder or an image collection, by image file, item id or text.

    QUERY is always a file (or a text with --text), never an item id: use --id ITEM for that.
    """
    if (folder is None) == (collection is None):
        raise InputError("give exactly one of --in FOLDER or --collection NAME")
    if (query is None) == (item_id is None):
        raise InputError(
            "give exactly one of QUERY (an image file or, with --text, a text) or --id"
        )
    if k < 1:
        raise InputError("--k must be at least 1")
    if collection is not None:
        rows = _similar_in_collection(query or item_id or "", collection, data_dir, text, k,
                                      item=item_id is not None)  # fmt: skip
    elif folder is not None and query is not None:
        rows = _similar_in_folder(query, folder, text, k, model)
    else:
        raise InputError("--id searches a collection: give --collection NAME")
    if as_json:
        print_json(rows)
        return
    table = Table(title=Text(f"images similar to {query or item_id}"))
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("image", overflow="fold")
    table.add_column("score", justify="right", no_wrap=True)
    for i, row in enumerate(rows, 1):
        table.add_row(str(i), Text(row["image"]), f"{row['score']:.4f}")
    console.print(table)


def _query_vector(enc: Any, query: str, text: bool) -> np.ndarray:
    import numpy as np

    from embedbox.images import load_image

    if text:
        return np.asarray(enc.embed_texts([query])[0])
    return np.asarray(enc.embed_images([load_image(query, query)])[0])


def _similar_in_folder(query: str, folder: Path, text: bool, k: int, model: str) -> list[Any]:
    import numpy as np

    from embedbox.images import embed_images

    enc = _encoder(model)
    with progress_bar("embedding images") as update:
        found = embed_images([str(folder)], enc, on_error="skip", progress=update)
    _report_skipped(found.skipped)
    if not found.names:
        raise InputError(f"no readable images in {folder}")
    scores = found.vectors @ _query_vector(enc, query, text)
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"image": found.names[i], "score": round(float(scores[i]), 6)} for i in order]


def _similar_in_collection(
    query: str, name: str, data_dir: Path | None, text: bool, k: int, item: bool
) -> list[Any]:
    from embedbox.store.images import open_image_collection, similar_images

    col = open_image_collection(name, data_dir=data_dir)  # searched with its own model
    hits = similar_images(col, query, k=k, text=text, item=item)
    return [{"id": h.id, "image": h.text, "score": round(float(h.score), 6)} for h in hits]


def run_add_images(
    collection: str,
    images: list[Path],
    model: str | None = None,
    data_dir: Path | None = None,
    as_json: bool = False,
    batch_size: int = 64,
) -> dict[str, Any]:
    """`embedbox add COLLECTION --images DIR...`: embed image files/folders into an image
    collection (created with `model`, default efficientnet-lite0, if missing); prints a summary."""
    from embedbox.errors import NotFound
    from embedbox.store.images import add_images, open_image_collection

    if not images:
        raise InputError("give image files or folders after --images")
    try:
        col = open_image_collection(collection, data_dir=data_dir, model=model)
    except NotFound:
        col = open_image_collection(collection, data_dir=data_dir, model=model, create=True)
    try:
        with progress_bar(f"adding images to {col.name}") as update:
            added = add_images(col, images, progress=update, batch=batch_size)
        total = col.count()
    finally:
        col.close()
    _report_skipped(added.skipped)
    summary = {
        "collection": col.name,
        "model": col.model,
        "added": len(added.ids),
        "skipped": [{"item": s.item, "reason": s.reason} for s in added.skipped],
        "count": total,
    }
    if as_json:
        print_json(summary)
    else:
        err_console.print(
            f"{len(added.ids)} image(s) added, {len(added.skipped)} skipped; "
            f"{col.name!r} now holds {total}"
        )
    return summary
