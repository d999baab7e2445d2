"""Image inputs and image embedding: paths, folders, PIL images, numpy arrays, bytes and base64.

>>> result = embed_images(["photos/"])          # a folder: unreadable files are skipped, reported
>>> result.vectors.shape, result.skipped        # ((n, 1280), [Skipped(path, reason), ...])

A single unreadable item raises `InputError` naming it; in folder mode (or `on_error="skip"`)
it is skipped and listed in `skipped` instead. Image collections live in `embedbox.store.images`.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedbox.errors import InputError, NotFound, require
from embedbox.types import Progress

if TYPE_CHECKING:
    from PIL.Image import Image

    from embedbox.models.image import ImageEncoder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
ImageInput = str | os.PathLike[str] | bytes | np.ndarray | Any  # Any: PIL.Image.Image
OnError = Literal["raise", "skip"]
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
    require("PIL", "images", "reading images")
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
    check_batch_size(batch)
    _check_on_error(on_error)
    return decode(list(_expand(items)), batch, on_error)


def check_batch_size(batch: int) -> None:
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch must be a positive integer, got {batch!r}")


def _check_on_error(on_error: OnError) -> None:
    if on_error not in ("raise", "skip"):
        raise InputError(f"on_error must be 'raise' or 'skip', not {on_error!r}")


def decode(
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
    check_batch_size(batch)
    _check_on_error(on_error)
    enc = _encoder(encoder)
    inputs = list(_expand(items))
    vectors: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[Skipped] = []
    for n, part in enumerate(decode(inputs, batch, on_error), 1):
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


_MOVED = ("AddedImages", "add_images", "open_image_collection", "similar_images")


def __getattr__(name: str) -> Any:
    """Image collections moved to `embedbox.store.images` (old names work for one release)."""
    if name in _MOVED:
        import warnings

        from embedbox.store import images

        warnings.warn(
            f"embedbox.images.{name} moved to embedbox.store.images.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(images, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
