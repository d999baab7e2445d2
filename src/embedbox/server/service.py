"""What the embedding routes share: limits, batching, Matryoshka slicing, base64 encoding."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import orjson
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from embedbox.embed import Embedder, EmbedResult
from embedbox.errors import EmbedboxError, Overloaded, RequestTimeout
from embedbox.server.errors import ApiError
from embedbox.server.limits import check_texts
from embedbox.server.pool import ModelPool
from embedbox.server.schemas import ErrorResponse
from embedbox.server.settings import ServerSettings
from embedbox.similarity import shorten

T = TypeVar("T")

# Error responses documented on every route (so the OpenAPI schema tells the whole truth).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Invalid request; `error.param` names the field"),
        (401, "Missing or invalid API key"),
        (403, "Read-only key used for a write"),
        (404, "Unknown model, collection or item"),
        (409, "Conflict"),
        (413, "Body too large"),
        (503, "Overloaded (see Retry-After) or model unavailable"),
        (504, "Timed out"),
    )
}


@dataclass
class Embedded:
    model: str
    embedder: Embedder
    result: EmbedResult


def settings_of(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


def pool_of(request: Request) -> ModelPool:
    pool: ModelPool = request.app.state.pool
    return pool


async def embed_texts(
    request: Request,
    texts: list[str],
    model: str | None,
    *,
    param: str = "input",
    input_type: Literal["query", "document"] | None = None,
    dimensions: int | None = None,
    truncate: bool | None = None,
) -> Embedded:
    """Validate, queue on the model's batcher, and post-process one request's texts."""
    settings = settings_of(request)
    pool = pool_of(request)
    check_texts(texts, settings.max_inputs, settings.max_input_chars, param)
    name = pool.resolve(model)
    batcher = await pool.get(name)
    embedder = batcher.embedder
    if dimensions is not None and not 1 <= dimensions <= embedder.dim:
        raise ApiError(
            400,
            f"dimensions must be between 1 and {embedder.dim} for {name}, got {dimensions}",
            param="dimensions",
        )
    allow_truncation = settings.truncate if truncate is None else truncate
    options: dict[str, Any] = {"truncate": False if allow_truncation else "error"}
    if input_type is not None:
        options["input_type"] = input_type
    try:
        result = await batcher.submit(texts, settings.request_timeout_s, **options)
    except Overloaded as exc:
        raise ApiError(
            503,
            f"server busy: {exc}; retry shortly",
            type="server_error",
            code="overloaded",
            headers={"Retry-After": "1"},
        ) from None
    except RequestTimeout as exc:
        raise ApiError(
            504, f"request timed out: {exc}", type="server_error", code="timeout"
        ) from None
    if dimensions is not None and dimensions < result.vectors.shape[1]:
        result.vectors = shorten(result.vectors, dimensions, embedder.info.normalize)
    return Embedded(name, embedder, result)


def to_base64(vector: np.ndarray) -> str:
    """Little-endian float32 bytes, base64-encoded, as OpenAI sends for `encoding_format=base64`."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def vectors_json(vectors: np.ndarray, fmt: str) -> list[str]:
    """Each row as ready JSON text: a float array, or a quoted base64 string.

    orjson writes each float32 as the shortest text that reads back as the same float32: several
    times faster than formatting in Python and smaller than pydantic's float64 output (numbers
    in docs/server.md). Non-finite values become `null`.
    """
    if fmt == "base64":
        return [f'"{to_base64(v)}"' for v in vectors]
    rows = np.ascontiguousarray(vectors, np.float32)
    return [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY).decode() for row in rows]


def json_response(payload: dict[str, Any], raw: dict[str, str], **kwargs: Any) -> Response:
    """`payload` as compact JSON, with each `raw` key's value spliced in as ready JSON text."""
    body = json.dumps(payload, separators=(",", ":"))
    if raw:
        fields = ",".join(f"{json.dumps(k)}:{v}" for k, v in raw.items())
        body = body[:-1] + ("," if payload else "") + fields + "}"
    return Response(body, media_type="application/json", **kwargs)


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
                if self.name is None:  # turned off: get() answers that before coming here
                    raise ApiError(404, f"this server has no {self.what}", code="off")
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


def check_k(request: Request, k: int) -> None:
    limit = settings_of(request).max_k
    if k > limit:
        raise ApiError(400, f"k is {k}; the limit is {limit}", param="k")
