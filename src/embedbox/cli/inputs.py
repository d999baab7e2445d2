"""What CLI commands read: a file of records (embedded on the way) or a collection's vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.cli.common import get_embedder, parse_where, progress_bar
from embedbox.errors import InputError, NotFound

if TYPE_CHECKING:
    import numpy as np

    from embedbox.store.collection import Collection

TextFieldOpt = typer.Option("text", "--text-field", help="Record field holding the text.")
IdFieldOpt = typer.Option(
    None,
    "--id-field",
    help="Record field holding the id (default: 'id' if the records have one, else the position).",
)


@dataclass
class Loaded:
    """Items of a file or collection: ids, texts (None for .npy), metadata and vectors."""

    ids: list[str]
    texts: list[str] | None
    records: list[dict[str, Any]]
    vectors: np.ndarray
    collection: Collection | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_input(
    source: str,
    text_field: str = "text",
    id_field: str | None = None,
    model: str = DEFAULT_TEXT_MODEL,
    compute: str = "auto",
    data_dir: Path | None = None,
    where: str | None = None,
) -> Loaded:
    """Read and embed a file, or read a collection's stored vectors. An input without texts
    (an empty file, an empty collection) is an `InputError`."""
    import numpy as np

    path = Path(source)
    if path.is_file():
        if where:
            raise InputError("--where filters collections; it does not apply to a file")
        if path.suffix.lower() == ".npy":
            vectors = np.load(path, allow_pickle=False)
            if vectors.ndim != 2:
                raise InputError(
                    f"{path}: expected a 2-D array (n, dim), got shape {vectors.shape}"
                )
            n = len(vectors)
            if n == 0:
                raise InputError(f"{path} holds no vectors")
            return Loaded([str(i) for i in range(n)], None, [{} for _ in range(n)], vectors)
        from embedbox.io import read_texts

        found = read_texts(path, text_field, id_field)
        texts = found.texts
        ids = found.ids or [str(n) for n in range(len(texts))]
        emb = get_embedder(model, compute)
        with progress_bar("embedding") as update:
            vectors = emb.embed(texts, progress=update)
        return Loaded(ids, texts, found.records, vectors)
    return load_collection(source, data_dir, where)


def load_collection(name: str, data_dir: Path | None, where: str | None = None) -> Loaded:
    from embedbox.store.collection import Collection

    try:
        col = Collection.open(name, data_dir=data_dir)
    except NotFound as exc:
        raise NotFound(f"{name!r} is neither a file nor a collection ({exc})") from exc
    filt = parse_where(where)
    ids, vectors = col.vectors(where=filt)
    if not ids:
        col.close()
        which = "no items match --where" if filt else "no items"
        raise InputError(f"collection {col.name!r} has {which}; nothing to work on")
    items = {it.id: it for it in col.items(where=filt)}
    records = [{"id": i, "text": items[i].text, **items[i].metadata} for i in ids]
    return Loaded(ids, [items[i].text for i in ids], records, vectors, col, {"where": filt})
