"""Image collections: each image is an item whose id and text are its absolute path.

>>> col = open_image_collection("album", create=True)    # EfficientNet-Lite0 by default
>>> add_images(col, "photos/")
>>> similar_images(col, "query.jpg", k=5)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedbox import catalog
from embedbox.errors import Conflict, InputError, NotFound
from embedbox.images import ImageInput, Skipped, check_batch_size, decode, list_images, load_image
from embedbox.models.image import ImageEncoder, image_model_info, load_image_encoder
from embedbox.store.collection import Collection, Item
from embedbox.store.search import Hit
from embedbox.types import Progress, Where

__all__ = ["AddedImages", "add_images", "open_image_collection", "similar_images"]


@dataclass
class AddedImages:
    """What `add_images` stored (ids are the images' absolute paths) and what it skipped."""

    ids: list[str]
    skipped: list[Skipped] = field(default_factory=list)


def open_image_collection(
    name: str,
    *,
    data_dir: str | Path | None = None,
    model: str | None = None,
    create: bool = False,
) -> Collection:
    """Open (or with `create=True` make) a collection of images for `model` (default
    efficientnet-lite0; a CLIP/SigLIP folder makes a text-image collection)."""
    if not create:
        col = Collection.open(name, model, data_dir=data_dir)
        _check_kind(col)
        return col
    model = model or catalog.DEFAULT_IMAGE_MODEL
    kind, dim = image_model_info(model)  # from the catalog or config.json: no weights loaded
    return Collection.open(name, model, data_dir=data_dir, create=True, kind=kind, dim=dim)


def _check_kind(col: Collection) -> None:
    if col.kind not in ("image", "text-image"):
        raise InputError(
            f"collection {col.name!r} holds {col.kind} vectors from {col.model!r}, not images; "
            "create an image collection (model efficientnet-lite0 or a CLIP/SigLIP folder)"
        )


def _collection_encoder(col: Collection, encoder: ImageEncoder | None) -> ImageEncoder:
    _check_kind(col)
    if encoder is None:
        return load_image_encoder(col.model)
    if not catalog.same_model(col.model, encoder.key or encoder.source or encoder.name):
        raise Conflict(f"collection {col.name!r} uses model {col.model!r}, not {encoder.name!r}")
    return encoder


def add_images(
    collection: Collection,
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    encoder: ImageEncoder | None = None,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
    batch: int = 64,
) -> AddedImages:
    """Embed image files and folders into an image collection, `batch` images per transaction.

    Each item's id and text are the image's absolute path; its metadata holds `path`, `name`,
    `width`, `height` (plus `metadata`). Re-adding a path replaces it (upsert), so re-running
    on a folder is safe. Unreadable files are skipped and returned in `skipped`.
    """
    check_batch_size(batch)
    enc = _collection_encoder(collection, encoder)
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    found: list[tuple[str, bool]] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found.extend((str(f.resolve()), True) for f in list_images(p))
        elif p.exists():
            found.append((str(p.resolve()), False))
        else:
            raise NotFound(f"no such image file or folder: {p}")
    files = [(path, path, from_folder) for path, from_folder in found]  # the path is the name
    result = AddedImages([])
    for n, part in enumerate(decode(files, batch, "raise"), 1):
        if part.images:
            ids = part.names
            vectors = enc.embed_images(part.images)
            metas: list[dict[str, Any] | None] = [
                {**(metadata or {}), "path": i, "name": Path(i).name, "width": im.width,
                 "height": im.height}
                for i, im in zip(ids, part.images, strict=True)
            ]  # fmt: skip
            collection.upsert(ids, ids=ids, metadatas=metas, vectors=vectors)
            result.ids.extend(ids)
        result.skipped.extend(part.skipped)
        if progress is not None:
            progress(min(n * batch, len(files)), len(files))
    return result


def similar_images(
    collection: Collection,
    query: ImageInput,
    *,
    encoder: ImageEncoder | None = None,
    k: int = 10,
    where: Where | None = None,
    text: bool = False,
    item: bool | None = None,
) -> list[Hit]:
    """Images in `collection` most similar to `query` -> list of `Hit` (text = image path).

    `query`: an image (path, PIL, array, bytes, base64), an item id of the collection with
    `item=True` (that item is left out of the answers), or a text with `text=True`
    (CLIP/SigLIP collections). With `item=None` a string that is an item id of the collection
    is taken as one, and any other string as an image file.
    """
    enc = _collection_encoder(collection, encoder)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if text:
        if not isinstance(query, str):
            raise InputError("a text query must be a string")
        return collection.search(enc.embed_texts([query])[0], k=k, where=where)
    found = None
    if item is not False and isinstance(query, str) and len(query) < 1024:
        found = _item(collection, query)
        if found is None and item:
            raise NotFound(f"no item {query!r} in collection {collection.name!r}")
    if found is not None and found.vector is not None:
        hits = collection.search(found.vector, k=k + 1, where=where)
        return [h for h in hits if h.id != query][:k]
    vec = enc.embed_images([load_image(query, _name(query))])[0]
    return collection.search(vec, k=k, where=where)


def _item(collection: Collection, item_id: str) -> Item | None:
    """The item with this id, with its vector, or None."""
    try:
        return collection.get([item_id], include_vectors=True)[0]
    except NotFound:
        return None


def _name(query: Any) -> str:
    if isinstance(query, os.PathLike) or (isinstance(query, str) and len(query) < 512):
        return str(query)
    return "query image"
