"""Images over HTTP, where the `images` extra is installed.

    POST /images/embed                         base64 images or data URLs (never server paths)
    POST /collections/{name}/images/similar    by item id, by base64 image, or by text (CLIP)

The image model (`settings.image_model`, EfficientNet-Lite0 by default, or the model an image
collection was built with) loads on first use, once per model, in the thread pool.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from embedbox import catalog
from embedbox.errors import InputError
from embedbox.server.auth import require_read
from embedbox.server.errors import ApiError
from embedbox.server.limits import CollectionName, check_count
from embedbox.server.schemas import HitOut, Metadata, SearchResponse
from embedbox.server.service import ERRORS, Lazy, check_k, json_response, settings_of, vectors_json

if TYPE_CHECKING:
    from PIL.Image import Image

    from embedbox.models.image import ImageEncoder

router = APIRouter(tags=["images"], dependencies=[Depends(require_read)])
collection_router = APIRouter(tags=["images"], dependencies=[Depends(require_read)])


def install(app: FastAPI) -> None:
    """Add the images routes (image collections too, where the store is served)."""
    app.state.image_models = {}  # canonical model name -> Lazy encoder (one compute lock each)
    app.state.image_models_lock = threading.Lock()
    app.include_router(router)
    if getattr(app.state, "collections", None) is not None:  # needs the store extra
        app.include_router(collection_router)


def _load_image_encoder(name: str) -> ImageEncoder:
    from embedbox.models.image import load_image_encoder

    return load_image_encoder(name)


def _image_model(request: Request, name: str | None = None) -> Lazy[ImageEncoder]:
    """The server's image model, or (for a collection) the model the collection was built with;
    one holder per model, whatever alias or path spelling names it."""
    state = request.app.state
    name = name or settings_of(request).image_model
    key = catalog.canonical_name(name) if name is not None else ""
    with state.image_models_lock:
        holder: Lazy[ImageEncoder] | None = state.image_models.get(key)
        if holder is None:
            holder = Lazy("image model", name, _load_image_encoder)
            if name is not None:
                state.image_models[key] = holder
    return holder


ImageData = Annotated[
    str,
    Field(
        min_length=1,
        description="Image bytes (PNG, JPEG, ...) as base64, or a data URL "
        "(`data:image/png;base64,...`). File paths are not accepted.",
    ),
]


class EmbedImages(BaseModel):
    """`POST /images/embed`."""

    model_config = ConfigDict(extra="forbid")

    images: list[ImageData] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"


class ImageEmbeddingsOut(BaseModel):
    model: str
    dim: int
    embeddings: list[list[float]] | list[str]


class SimilarImages(BaseModel):
    """`POST /collections/{name}/images/similar`: give exactly one of `id`, `image`, `text`."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="An item of the collection (left out of answers).")
    image: ImageData | None = None
    text: str | None = Field(None, description="Text query (CLIP / SigLIP collections only).")
    k: int = Field(10, ge=1)
    where: Metadata | None = None


def decode_image(value: str, param: str, max_pixels: int) -> Image:
    """A base64 string or data URL -> RGB image; 400 naming `param` for anything else."""
    from PIL import Image as PILImage

    from embedbox.images import load_image

    payload = value.strip()
    if payload.startswith("data:"):
        header, _, payload = payload.partition(",")
        if not header.endswith(";base64"):
            raise _bad_image(param, "a data URL must be base64-encoded (data:image/png;base64,...)")
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _bad_image(param, "is not base64 (send image bytes base64-encoded or a data URL; "
                         "file paths are not accepted)") from None  # fmt: skip
    try:
        with PILImage.open(io.BytesIO(raw)) as probe:
            width, height = probe.size
    except Exception:
        raise _bad_image(param, "is not a readable image (unknown or damaged format)") from None
    if width * height > max_pixels:
        raise _bad_image(param, f"is {width}x{height}, over the limit of {max_pixels} pixels")
    try:
        return load_image(raw, param)
    except InputError as exc:
        raise _bad_image(param, str(exc).removeprefix(f"{param}: ")) from None


def _bad_image(param: str, why: str) -> ApiError:
    return ApiError(400, f"{param} {why}", param=param, code="invalid_image")


def _decode_all(request: Request, items: list[str], param: str) -> list[Image]:
    s = settings_of(request)
    check_count(len(items), s.max_images, param, "images")
    return [decode_image(v, f"{param}[{i}]", s.max_image_pixels) for i, v in enumerate(items)]


async def _embed(holder: Lazy[ImageEncoder], pictures: list[Image]) -> np.ndarray:
    encoder = await holder.get()

    def run() -> np.ndarray:
        with holder.compute_lock:
            return encoder.embed_images(pictures)

    return await run_in_threadpool(run)


@router.post("/images/embed", response_model=ImageEmbeddingsOut, responses=ERRORS)
async def embed_images(body: EmbedImages, request: Request) -> Response:
    """Embed images sent as base64 or data URLs (L2-normalised vectors, in order)."""
    pictures = await run_in_threadpool(_decode_all, request, body.images, "images")
    holder = _image_model(request)
    vectors = await _embed(holder, pictures)
    payload = {"model": str(holder.name), "dim": int(vectors.shape[1])}
    rows = ",".join(vectors_json(vectors, body.encoding_format))
    return json_response(payload, {"embeddings": f"[{rows}]"})


@collection_router.post(
    "/collections/{name}/images/similar", response_model=SearchResponse, responses=ERRORS
)
async def similar_images(
    name: CollectionName, body: SimilarImages, request: Request
) -> SearchResponse:
    """Images of an image collection most like an item (`id`), an image, or a text (CLIP)."""
    from embedbox.server.collections import check_where, open_collection

    given = [f for f in ("id", "image", "text") if getattr(body, f) is not None]
    if len(given) != 1:
        raise ApiError(400, "give exactly one of id, image or text", param="id")
    check_k(request, body.k)
    check_where(request, body.where)
    col = await open_collection(request, name)
    if col.kind not in ("image", "text-image"):
        raise ApiError(
            400,
            f"collection {name!r} holds {col.kind} vectors, not images; use /collections/{name}/"
            "search for text collections",
            code="not_an_image_collection",
        )
    holder = _image_model(request, col.model)
    if body.id is not None:
        item = await run_in_threadpool(col.get, [body.id], include_vectors=True)
        query: Any = item[0].vector
        hits = await run_in_threadpool(col.search, query, k=body.k + 1, where=body.where)
        hits = [h for h in hits if h.id != body.id][: body.k]
    elif body.image is not None:
        picture = await run_in_threadpool(decode_image, body.image, "image", _pixels(request))
        query = (await _embed(holder, [picture]))[0]
        hits = await run_in_threadpool(col.search, query, k=body.k, where=body.where)
    else:
        if col.kind != "text-image":
            raise ApiError(400, "text queries need a CLIP / SigLIP collection", param="text")
        encoder = await holder.get()
        query = (await run_in_threadpool(encoder.embed_texts, [str(body.text)]))[0]
        hits = await run_in_threadpool(col.search, query, k=body.k, where=body.where)
    return SearchResponse(hits=[HitOut.model_validate(h.to_dict()) for h in hits])


def _pixels(request: Request) -> int:
    return settings_of(request).max_image_pixels
