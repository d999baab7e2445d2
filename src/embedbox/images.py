"""Image inputs and image embedding: paths, folders, PIL images, numpy arrays, bytes and base64.

>>> result = embed_images(["photos/"])          # a folder: unreadable files are skipped, reported
>>> result.vectors.shape, result.skipped        # ((n, 1280), [Skipped(path, reason), ...])

A single unreadable item raises `InputError` naming it; in folder mode (or `on_error="skip"`)
it is skipped and listed in `skipped` instead. Image collections store each image as an item
whose text is its path (see `add_images` and `similar_images`).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedbox.errors import InputError, NotFound

if TYPE_CHECKING:
    from PIL.Image import Image

    from embedbox.models.image import ImageEncoder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
ImageInput = str | os.PathLike[str] | bytes | np.ndarray | Any  # Any: PIL.Image.Image
OnError = Literal["raise", "skip"]
Progress = Callable[[int, int], None]
MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Skipped:
    item: str
    reason: str


@dataclass
class ImageBatch:
    """Decoded RGB images, a name for each (path or `item N`), and what was skipped."""

    images: list[Image] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class ImageEmbeddings:
    vectors: np.ndarray
    names: list[str]
    skipped: list[Skipped] = field(default_factory=list)


def list_images(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Image files (by extension) in a folder, sorted; hidden files are left out."""
    root = Path(folder)
    if not root.is_dir():
        raise NotFound(f"no such folder: {root}")
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in root.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def load_image(item: ImageInput, name: str = "image") -> Image:
    """One input as an RGB PIL image; `InputError` naming `name` when it is not an image."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if isinstance(item, PILImage.Image):
        return _rgb(item)
    if isinstance(item, np.ndarray):
        return _from_array(item, name)
    data: bytes | None = None
    if isinstance(item, bytes | bytearray | memoryview):
        data = bytes(item)
    elif isinstance(item, str) and item.startswith("data:"):
        data = _b64(item.split(",", 1)[-1], name)
    elif isinstance(item, str | os.PathLike):
        path = Path(item).expanduser()
        if not _exists(path):
            if isinstance(item, str) and len(item) > 64 and "/" not in item[:64].strip("/+"):
                data = _b64(item, name)
            else:
                raise NotFound(f"{name}: no such file: {path}")
        elif path.is_dir():
            raise InputError(f"{name}: {path} is a folder; pass it as a folder input to embed all")
        else:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"{name}: cannot read {path}: {exc.strerror or exc}") from exc
    else:
        raise InputError(
            f"{name}: unsupported image input {type(item).__name__}; pass a path, folder, "
            "PIL image, numpy array, bytes or base64 string"
        )
    try:
        img = PILImage.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise InputError(f"{name}: {img.width}x{img.height} is larger than {MAX_PIXELS} pixels")
        img.load()
    except UnidentifiedImageError as exc:
        raise InputError(f"{name}: not a readable image (unknown or damaged format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{name}: not a readable image ({exc})") from exc
    return _rgb(img)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a base64 string longer than a file name may be
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _rgb(img: Image) -> Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        from PIL import Image as PILImage

        rgba = img.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _from_array(arr: np.ndarray, name: str) -> Image:
    from PIL import Image as PILImage

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channels-first (C, H, W)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) or min(a.shape[:2]) < 1:
        raise InputError(f"{name}: array of shape {a.shape} is not an image; use (H, W), (H, W, 3)")
    if a.dtype == np.uint8:
        pass
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_:
        if not np.isfinite(a).all():
            raise InputError(f"{name}: the array has NaN or infinite values")
        hi = float(a.max()) if a.size else 0.0
        a = np.clip(a * 255.0 if hi <= 1.0 else a, 0, 255).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        a = np.clip(a, 0, 255).astype(np.uint8)
    else:
        raise InputError(f"{name}: unsupported array dtype {a.dtype}")
    return _rgb(PILImage.fromarray(a))


def _b64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{name}: not a file path and not valid base64 ({exc})") from exc


def image_batches(
    items: ImageInput | Sequence[ImageInput], batch: int = 64, on_error: OnError = "raise"
) -> Iterator[ImageBatch]:
    """Decode inputs `batch` at a time, one `ImageBatch` each (the last may be shorter);
    folders expand to their images and always skip unreadable files."""
    _check_batch(batch)
    _check_on_error(on_error)
    return _decode(list(_expand(items)), batch, on_error)


def _check_batch(batch: int) -> None:
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch must be a positive integer, got {batch!r}")


def _check_on_error(on_error: OnError) -> None:
    if on_error not in ("raise", "skip"):
        raise InputError(f"on_error must be 'raise' or 'skip', not {on_error!r}")


def _decode(
    inputs: Sequence[tuple[Any, str, bool]], batch: int, on_error: OnError
) -> Iterator[ImageBatch]:
    """Decode (input, name, came from a folder) triples, `batch` inputs per `ImageBatch`."""
    for start in range(0, len(inputs), batch):
        part = ImageBatch()
        for source, label, from_folder in inputs[start : start + batch]:
            try:
                part.images.append(load_image(source, label))
                part.names.append(label)
            except (InputError, NotFound) as exc:
                if on_error == "raise" and not from_folder:
                    raise
                part.skipped.append(Skipped(label, str(exc).removeprefix(f"{label}: ")))
        yield part


def _expand(items: ImageInput | Sequence[ImageInput]) -> Iterable[tuple[Any, str, bool]]:
    """(input, label, came from a folder) for each image; folders expand to their files."""
    if isinstance(items, str | os.PathLike | bytes | np.ndarray) or not isinstance(items, Sequence):
        items = [items]
    for i, item in enumerate(items):
        if isinstance(item, str | os.PathLike) and _is_dir(Path(item).expanduser()):
            for path in list_images(Path(item).expanduser()):
                yield str(path), str(path), True
        elif isinstance(item, os.PathLike) or (isinstance(item, str) and len(item) < 512):
            yield item, str(item), False
        else:
            yield item, f"item {i}", False


def embed_images(
    items: ImageInput | Sequence[ImageInput],
    encoder: ImageEncoder | str | None = None,
    on_error: OnError = "raise",
    progress: Progress | None = None,
    batch: int = 64,
) -> ImageEmbeddings:
    """Embed images -> `ImageEmbeddings` (float32 (n, dim) L2-normalised, names, skipped).

    Decodes and embeds `batch` inputs at a time, so memory does not grow with a folder;
    `progress(done, total)` counts inputs.
    """
    _check_batch(batch)
    _check_on_error(on_error)
    enc = _encoder(encoder)
    inputs = list(_expand(items))
    vectors: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[Skipped] = []
    for n, part in enumerate(_decode(inputs, batch, on_error), 1):
        if part.images:
            vectors.append(enc.embed_images(part.images))
        names += part.names
        skipped += part.skipped
        if progress is not None:
            progress(min(n * batch, len(inputs)), len(inputs))
    if not vectors:
        return ImageEmbeddings(np.zeros((0, enc.dim), np.float32), names, skipped)
    return ImageEmbeddings(np.concatenate(vectors), names, skipped)


def _encoder(encoder: ImageEncoder | str | None) -> ImageEncoder:
    from embedbox.catalog import DEFAULT_IMAGE_MODEL
    from embedbox.models.image import load_image_encoder

    if encoder is None or isinstance(encoder, str):
        return load_image_encoder(encoder or DEFAULT_IMAGE_MODEL)
    return encoder


# ---- image collections ------------------------------------------------------------------------
@dataclass
class AddedImages:
    """What `add_images` stored (ids are the images' absolute paths) and what it skipped."""

    ids: list[str]
    skipped: list[Skipped] = field(default_factory=list)


def open_image_collection(
    name: str,
    data_dir: str | Path | None = None,
    model: str | None = None,
    create: bool = False,
) -> Any:
    """Open (or with `create=True` make) a collection of images for `model` (default
    efficientnet-lite0; a CLIP/SigLIP folder makes a text-image collection)."""
    from embedbox.catalog import DEFAULT_IMAGE_MODEL
    from embedbox.collection import Collection
    from embedbox.models.image import image_model_info

    if not create:
        col = Collection.open(name, model, data_dir=data_dir)
        _check_kind(col)
        return col
    model = model or DEFAULT_IMAGE_MODEL
    kind, dim = image_model_info(model)  # from the catalog or config.json: no weights loaded
    return Collection.open(name, model, data_dir=data_dir, create=True, kind=kind, dim=dim)


def _check_kind(col: Any) -> None:
    if col.kind not in ("image", "text-image"):
        raise InputError(
            f"collection {col.name!r} holds {col.kind} vectors from {col.model!r}, not images; "
            "create an image collection (model efficientnet-lite0 or a CLIP/SigLIP folder)"
        )


def _collection_encoder(col: Any, encoder: ImageEncoder | None) -> ImageEncoder:
    from embedbox.errors import Conflict
    from embedbox.models.image import load_image_encoder

    _check_kind(col)
    if encoder is None:
        return load_image_encoder(col.model)
    if col.model not in (encoder.name, encoder.source) and not _same_model(col.model, encoder):
        raise Conflict(f"collection {col.name!r} uses model {col.model!r}, not {encoder.name!r}")
    return encoder


def _same_model(model: str, encoder: ImageEncoder) -> bool:
    """Whether `model` names the model `encoder` was loaded as, under another alias or path
    spelling (a cached encoder keeps the `source` of whoever loaded it first)."""
    from embedbox.errors import ModelNotFound
    from embedbox.models.image import image_model_key

    try:
        return bool(encoder.key) and image_model_key(model) == encoder.key
    except ModelNotFound:
        return False


def add_images(
    collection: Any,
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
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
    _check_batch(batch)
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
    for n, part in enumerate(_decode(files, batch, "raise"), 1):
        if part.images:
            ids = part.names
            vectors = enc.embed_images(part.images)
            metas = [
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
    collection: Any,
    query: ImageInput,
    encoder: ImageEncoder | None = None,
    k: int = 10,
    where: dict[str, Any] | None = None,
    text: bool = False,
) -> list[Any]:
    """Images in `collection` most similar to `query` -> list of `Hit` (text = image path).

    `query`: an item id of the collection (that item is left out of the answers), an image
    (path, PIL, array, bytes, base64) or, with `text=True`, a text (CLIP/SigLIP collections).
    """
    enc = _collection_encoder(collection, encoder)
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if text:
        if not isinstance(query, str):
            raise InputError("a text query must be a string")
        return list(collection.search(enc.embed_texts([query])[0], k=k, where=where))
    item = _item(collection, query) if isinstance(query, str) and len(query) < 1024 else None
    if item is not None:
        hits = collection.search(item.vector, k=k + 1, where=where)
        return [h for h in hits if h.id != query][:k]
    vec = enc.embed_images([load_image(query, _name(query))])[0]
    return list(collection.search(vec, k=k, where=where))


def _item(collection: Any, item_id: str) -> Any:
    """The item with this id, with its vector, or None."""
    try:
        return collection.get([item_id], include_vectors=True)[0]
    except NotFound:
        return None


def _name(query: Any) -> str:
    if isinstance(query, os.PathLike) or (isinstance(query, str) and len(query) < 512):
        return str(query)
    return "query image"
