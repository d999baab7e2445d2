"""Words and images over HTTP, where those capabilities are installed.

    POST /words/similar, /words/analogy, /words/similarity, /words/odd-one-out, /words/vectors
    POST /images/embed                         base64 images or data URLs (never server paths)
    POST /collections/{name}/images/similar    by item id, by base64 image, or by text (CLIP)

The word vectors (`settings.word_model`, GloVe 6B 50d by default) and the image model
(`settings.image_model`, EfficientNet-Lite0 by default) load on first use, once, in the thread
pool; a missing package is a 503 naming what to install, a model turned off (None) a 404.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from embedbox.errors import EmbedboxError, InputError
from embedbox.server.auth import require_read
from embedbox.server.errors import ApiError
from embedbox.server.limits import check_count, check_text
from embedbox.server.schemas import HitOut, Metadata, SearchResponse
from embedbox.server.service import ERRORS, json_response, settings_of, vectors_json
from embedbox.server.settings import ServerSettings

if TYPE_CHECKING:
    from PIL.Image import Image

    from embedbox.models.image import ImageEncoder
    from embedbox.words import WordVectors

T = TypeVar("T")
words = APIRouter(prefix="/words", tags=["words"], dependencies=[Depends(require_read)])
images = APIRouter(tags=["images"], dependencies=[Depends(require_read)])
image_collections = APIRouter(tags=["images"], dependencies=[Depends(require_read)])
Name = Annotated[
    str,
    PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="Collection name."),
]
Word = Annotated[str, Field(min_length=1, description="A word, or a phrase of words (averaged).")]


def install(app: FastAPI) -> None:
    """Add the words and images routes; models load on first use."""
    settings: ServerSettings = app.state.settings
    app.state.word_model = Lazy("word model", settings.word_model, _load_words)
    app.state.image_models = {}  # image model name -> Lazy encoder (a collection may name one)
    app.state.image_models_lock = threading.Lock()
    app.include_router(words)
    app.include_router(images)
    if getattr(app.state, "collections", None) is not None:  # needs the store extra
        app.include_router(image_collections)


class Lazy(Generic[T]):
    """A model loaded once, on first use, off the event loop; a failed load is retried later."""

    def __init__(self, what: str, name: str | None, load: Callable[[str], T]) -> None:
        self.what = what
        self.name = name
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()
        self.compute_lock = threading.Lock()  # one forward at a time: the CPU threads are shared

    async def get(self) -> T:
        if self._value is not None:
            return self._value
        if self.name is None:
            raise ApiError(404, f"this server has no {self.what} (it was turned off)", code="off")
        return await run_in_threadpool(self._get_sync)

    def _get_sync(self) -> T:
        with self._lock:
            if self._value is None:
                assert self.name is not None
                try:
                    self._value = self._load(self.name)
                except (EmbedboxError, ImportError, OSError) as exc:
                    raise ApiError(
                        503,
                        f"{self.what} {self.name!r} could not be loaded: {exc}",
                        type="server_error",
                        code="model_unavailable",
                    ) from None
            return self._value


def _load_words(name: str) -> WordVectors:
    from embedbox.words import load_words

    return load_words(name)


def _load_image_encoder(name: str) -> ImageEncoder:
    from embedbox.models.image import load_image_encoder

    return load_image_encoder(name)


def _image_model(request: Request, name: str | None = None) -> Lazy[ImageEncoder]:
    """The server's image model, or (for a collection) the model the collection was built with."""
    state = request.app.state
    name = name or settings_of(request).image_model
    key = _image_key(name) if name is not None else ""
    with state.image_models_lock:
        holder: Lazy[ImageEncoder] | None = state.image_models.get(key)
        if holder is None:
            holder = Lazy("image model", name, _load_image_encoder)
            if name is not None:
                state.image_models[key] = holder
    return holder


def _image_key(name: str) -> str:
    """One holder (so one compute lock) per model, whatever alias or path spelling names it."""
    from embedbox.models.image import image_model_key

    try:
        return image_model_key(name)
    except EmbedboxError:  # unknown: loading it answers the error
        return name


def _check_k(request: Request, k: int) -> None:
    limit = settings_of(request).max_k
    if k > limit:
        raise ApiError(400, f"k is {k}; the limit is {limit}", param="k")


# ---- words -------------------------------------------------------------------------------
class WordScoreOut(BaseModel):
    word: str
    score: float


class WordsResponse(BaseModel):
    model: str
    results: list[WordScoreOut]


class SimilarWords(BaseModel):
    """`POST /words/similar`: nearest words to a word or phrase."""

    model_config = ConfigDict(extra="forbid")

    word: Word
    k: int = Field(10, ge=1)
    exclude: list[str] = Field(default_factory=list, description="Words never to return.")


class Analogy(BaseModel):
    """`POST /words/analogy`: `a` is to `b` as `c` is to ? (b - a + c)."""

    model_config = ConfigDict(extra="forbid")

    a: Word
    b: Word
    c: Word
    k: int = Field(10, ge=1)
    method: Literal["3cosadd", "3cosmul"] = "3cosadd"


class WordPairs(BaseModel):
    """`POST /words/similarity`: cosine similarity of each pair of words or phrases."""

    model_config = ConfigDict(extra="forbid")

    pairs: list[Annotated[list[Word], Field(min_length=2, max_length=2)]] = Field(min_length=1)


class PairScores(BaseModel):
    model: str
    scores: list[float]


class WordList(BaseModel):
    """`POST /words/odd-one-out` (at least three) and `POST /words/vectors`."""

    model_config = ConfigDict(extra="forbid")

    words: list[Word] = Field(min_length=1)


class OddOneOut(BaseModel):
    model: str
    word: str
    score: float = Field(description="Its similarity to the mean of the others.")


class WordVectorsOut(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]]


def _known(wv: WordVectors, text: str, param: str) -> np.ndarray:
    """The phrase vector, or a 404 naming the unknown word and close spellings."""
    from embedbox.words import OutOfVocabulary

    try:
        return wv.phrase_vector(text)
    except OutOfVocabulary as exc:
        raise ApiError(404, f"{param}: {exc}", param=param, code="word_not_found") from None
    except InputError as exc:
        raise ApiError(400, f"{param}: {exc}", param=param, code="invalid_value") from None


async def _words(request: Request, checks: list[tuple[str, str]]) -> WordVectors:
    """Load the word vectors and check every (param, text) before any work is done."""
    s = settings_of(request)
    check_count(len(checks), s.max_inputs, checks[0][0].split("[")[0], "words")
    for param, text in checks:
        check_text(text, param, s.max_input_chars)
    wv: WordVectors = await request.app.state.word_model.get()
    for param, text in checks:
        _known(wv, text, param)
    return wv


def _scores(found: list[Any]) -> list[WordScoreOut]:
    return [WordScoreOut(word=w.word, score=w.score) for w in found]


@words.post("/similar", response_model=WordsResponse, responses=ERRORS)
async def similar_words(body: SimilarWords, request: Request) -> WordsResponse:
    """The `k` words nearest to a word or phrase (the query's own words left out)."""
    _check_k(request, body.k)
    wv = await _words(request, [("word", body.word)])
    found = await run_in_threadpool(wv.similar, body.word, body.k, body.exclude)
    return WordsResponse(model=wv.name, results=_scores(found))


@words.post("/analogy", response_model=WordsResponse, responses=ERRORS)
async def analogy(body: Analogy, request: Request) -> WordsResponse:
    """`a` is to `b` as `c` is to ...: man, king, woman -> queen (the inputs are never answers)."""
    _check_k(request, body.k)
    wv = await _words(request, [("a", body.a), ("b", body.b), ("c", body.c)])
    found = await run_in_threadpool(wv.analogy, body.a, body.b, body.c, body.k, body.method)
    return WordsResponse(model=wv.name, results=_scores(found))


@words.post("/similarity", response_model=PairScores, responses=ERRORS)
async def word_similarity(body: WordPairs, request: Request) -> PairScores:
    """Cosine similarity of each `[word, word]` pair (phrases are averaged)."""
    checks = [
        (f"pairs[{i}][{j}]", w) for i, pair in enumerate(body.pairs) for j, w in enumerate(pair)
    ]
    wv = await _words(request, checks)
    return PairScores(model=wv.name, scores=[wv.similarity(a, b) for a, b in body.pairs])


@words.post("/odd-one-out", response_model=OddOneOut, responses=ERRORS)
async def odd_one_out(body: WordList, request: Request) -> OddOneOut:
    """The word least like the others (at least three words)."""
    if len(body.words) < 3:
        raise ApiError(400, "words: odd-one-out needs at least three words", param="words")
    wv = await _words(request, [(f"words[{i}]", w) for i, w in enumerate(body.words)])
    found = wv.odd_one_out(body.words)
    return OddOneOut(model=wv.name, word=found.word, score=found.score)


@words.post("/vectors", response_model=WordVectorsOut, responses=ERRORS)
async def word_vectors(body: WordList, request: Request) -> Response:
    """Unit vectors of words or phrases."""
    wv = await _words(request, [(f"words[{i}]", w) for i, w in enumerate(body.words)])
    rows = ",".join(vectors_json(wv.embed(body.words), "float"))
    return json_response({"model": wv.name, "dim": wv.dim}, {"vectors": f"[{rows}]"})


# ---- images ------------------------------------------------------------------------------
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


@images.post("/images/embed", response_model=ImageEmbeddingsOut, responses=ERRORS)
async def embed_images(body: EmbedImages, request: Request) -> Response:
    """Embed images sent as base64 or data URLs (L2-normalised vectors, in order)."""
    pictures = await run_in_threadpool(_decode_all, request, body.images, "images")
    holder = _image_model(request)
    vectors = await _embed(holder, pictures)
    payload = {"model": str(holder.name), "dim": int(vectors.shape[1])}
    rows = ",".join(vectors_json(vectors, body.encoding_format))
    return json_response(payload, {"embeddings": f"[{rows}]"})


@image_collections.post(
    "/collections/{name}/images/similar", response_model=SearchResponse, responses=ERRORS
)
async def similar_images(name: Name, body: SimilarImages, request: Request) -> SearchResponse:
    """Images of an image collection most like an item (`id`), an image, or a text (CLIP)."""
    from embedbox.server.collections import _collection, _where

    given = [f for f in ("id", "image", "text") if getattr(body, f) is not None]
    if len(given) != 1:
        raise ApiError(400, "give exactly one of id, image or text", param="id")
    _check_k(request, body.k)
    _where(request, body.where)
    col = await _collection(request, name)
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
