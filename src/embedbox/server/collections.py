"""Native collection routes: create / list / info / drop, items, search, recommend.

Collections are opened once and kept (thread-safe: each has its own lock; SQLite in WAL mode);
their text model is the server's own `Embedder` for that model, so no model is loaded twice.
Library calls run in the thread pool so the event loop never waits on SQLite or the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from embedbox.errors import Conflict, InputError, NotFound
from embedbox.server.auth import require_read, require_write
from embedbox.server.errors import ApiError, public_message, sees_paths
from embedbox.server.limits import (
    CollectionName,
    check_collection_name,
    check_count,
    check_filter,
    check_text,
    check_texts,
)
from embedbox.server.schemas import (
    AddItems,
    BatchSearchResponse,
    CollectionInfo,
    CollectionList,
    CreateCollection,
    Deleted,
    DeleteItems,
    ItemIds,
    ItemsOut,
    RecommendRequest,
    RecommendResponse,
    SearchRequest,
    SearchResponse,
    WriteResult,
)
from embedbox.server.service import ERRORS, pool_of, settings_of
from embedbox.store.collection import Collection, drop_collection, list_collections
from embedbox.store.filters import compile_filter, compile_where

T = TypeVar("T")
router = APIRouter(prefix="/collections", tags=["collections"])
Read = [Depends(require_read)]
Write = [Depends(require_write)]


class CollectionCache:
    """Open collections by name; closed (indexes flushed) on shutdown or drop."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._open: dict[str, Collection] = {}
        self._lock = threading.Lock()

    def get(self, name: str, embedder: Any = None) -> Collection:
        with self._lock:
            col = self._open.get(name)
            if col is None:
                col = Collection.open(name, data_dir=self.data_dir, embedder=embedder)
                self._open[name] = col
            return col

    def peek(self, name: str) -> Collection | None:
        with self._lock:
            return self._open.get(name)

    def forget(self, name: str) -> None:
        with self._lock:
            col = self._open.pop(name, None)
            if col is not None:
                col.close()

    def close_all(self) -> None:
        with self._lock:
            for col in self._open.values():
                col.close()
            self._open.clear()


def cache_of(request: Request) -> CollectionCache:
    cache: CollectionCache = request.app.state.collections
    return cache


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


async def open_collection(request: Request, name: str) -> Collection:
    """The open collection, with the served `Embedder` for its model (never a second copy)."""
    check_collection_name(name)
    cache = cache_of(request)
    col = cache.peek(name)
    if col is not None:
        return col
    try:
        probe = await _call(Collection.open, name, data_dir=cache.data_dir)
    except NotFound:
        raise ApiError(
            404, f"no collection {name!r}; create it with POST /collections", code="not_found"
        ) from None
    model, kind = probe.model, probe.kind
    probe.close()
    embedder = None
    if kind in ("text", "text-image"):
        pool = pool_of(request)
        if model not in pool.names:
            raise ApiError(
                409,
                f"collection {name!r} uses model {model!r}, which this server does not serve; "
                f"start the server with --model {model}",
                code="model_not_served",
            )
        embedder = (await pool.get(model)).embedder
    return await _call(cache.get, name, embedder)


def check_where(request: Request, where: dict[str, Any] | None, param: str = "where") -> None:
    """A metadata filter (or with `param="where_document"` a text filter), checked up front."""
    check_filter(where, settings_of(request).max_filter_depth, param)
    if where is not None:
        try:
            if param == "where":
                compile_where(where)
            else:
                compile_filter(None, where)
        except InputError as exc:
            raise ApiError(400, str(exc), param=param, code="invalid_filter") from None


def _k(request: Request, k: int) -> None:
    limit = settings_of(request).max_k
    if k > limit:
        raise ApiError(400, f"k is {k}; the limit is {limit}", param="k")


def public_info(request: Request, info: dict[str, Any]) -> CollectionInfo:
    """A collection's info as this client may see it: server paths for read-write keys only."""
    shown = dict(info)
    if not sees_paths(request):
        shown.pop("path", None)
    if "error" in shown:
        shown["error"] = public_message(str(shown["error"]), sees_paths(request))
    return CollectionInfo(**shown)


@router.get("", response_model=CollectionList, responses=ERRORS, dependencies=Read)
async def list_all(request: Request) -> CollectionList:
    """Every collection with its info; one that cannot be read is listed with an `error`."""
    infos = await _call(list_collections, cache_of(request).data_dir)
    return CollectionList(collections=[public_info(request, i) for i in infos])


@router.post(
    "", response_model=CollectionInfo, status_code=201, responses=ERRORS, dependencies=Write
)
async def create(body: CreateCollection, request: Request) -> JSONResponse:
    """Create a collection for a served text model (409 when the name is taken)."""
    check_collection_name(body.name)
    pool = pool_of(request)
    model = pool.resolve(body.model)
    embedder = (await pool.get(model)).embedder
    cache = cache_of(request)

    def make() -> dict[str, Any]:
        try:
            Collection.open(body.name, data_dir=cache.data_dir).close()
        except NotFound:
            pass
        else:
            raise Conflict(f"collection {body.name!r} already exists")
        col = Collection.open(
            body.name, model, data_dir=cache.data_dir, create=True, embedder=embedder
        )
        col.close()
        return cache.get(body.name, embedder).info()

    info = await _call(make)
    return JSONResponse(public_info(request, info).model_dump(), status_code=201)


@router.get("/{name}", response_model=CollectionInfo, responses=ERRORS, dependencies=Read)
async def info(name: CollectionName, request: Request) -> CollectionInfo:
    col = await open_collection(request, name)
    return public_info(request, await _call(col.info))


@router.delete("/{name}", response_model=Deleted, responses=ERRORS, dependencies=Write)
async def drop(name: CollectionName, request: Request) -> Deleted:
    """Delete a collection and its files."""
    check_collection_name(name)
    cache = cache_of(request)
    cache.forget(name)
    await _call(drop_collection, name, cache.data_dir)
    return Deleted(deleted=1)


def _check_items(request: Request, body: AddItems) -> None:
    s = settings_of(request)
    check_texts(body.texts, s.max_inputs, s.max_input_chars, "texts")


@router.post("/{name}/items", response_model=WriteResult, responses=ERRORS, dependencies=Write)
async def add(name: CollectionName, body: AddItems, request: Request) -> WriteResult:
    """Add new items (an existing id is a 409); ids are generated when omitted."""
    _check_items(request, body)
    col = await open_collection(request, name)
    ids = await _call(col.add, body.texts, ids=body.ids, metadatas=body.metadatas)
    return WriteResult(ids=ids, added=len(ids))


@router.put("/{name}/items", response_model=WriteResult, responses=ERRORS, dependencies=Write)
async def upsert(name: CollectionName, body: AddItems, request: Request) -> WriteResult:
    """Insert or replace items by id; unchanged texts are not re-embedded."""
    _check_items(request, body)
    if body.ids is None:
        raise ApiError(400, "ids: upsert needs ids", param="ids")
    col = await open_collection(request, name)
    stats = await _call(col.upsert_stats, body.texts, ids=body.ids, metadatas=body.metadatas)
    return WriteResult(
        ids=stats.ids, added=stats.added, updated=stats.updated, unchanged=stats.unchanged
    )


@router.post("/{name}/items/get", response_model=ItemsOut, responses=ERRORS, dependencies=Read)
async def get(name: CollectionName, body: ItemIds, request: Request) -> ItemsOut:
    """Items by id, in the order asked (404 naming missing ids)."""
    if len(body.ids) > settings_of(request).max_inputs:
        raise ApiError(400, "ids: too many ids in one request", param="ids")
    col = await open_collection(request, name)
    items = await _call(col.get, body.ids)
    return ItemsOut.model_validate({"items": [i.to_dict() for i in items]})


@router.post("/{name}/items/delete", response_model=Deleted, responses=ERRORS, dependencies=Write)
async def delete(name: CollectionName, body: DeleteItems, request: Request) -> Deleted:
    """Delete items by ids and/or a `where` filter."""
    if body.ids is None and body.where is None:
        raise ApiError(400, "give ids, where, or both", param="ids")
    check_where(request, body.where)
    col = await open_collection(request, name)
    return Deleted(deleted=await _call(col.delete, ids=body.ids, where=body.where))


@router.post(
    "/{name}/search",
    response_model=SearchResponse | BatchSearchResponse,
    responses=ERRORS,
    dependencies=Read,
)
async def search(
    name: CollectionName, body: SearchRequest, request: Request
) -> SearchResponse | BatchSearchResponse:
    """Semantic, keyword (BM25) or hybrid search by text or vector; `where` and
    `where_document` filter before ranking. `queries` / `vectors` search several at once."""
    s = settings_of(request)
    given = [f for f in ("query", "queries", "vector", "vectors") if getattr(body, f) is not None]
    if len(given) != 1:
        raise ApiError(400, "give exactly one of query, queries, vector or vectors", param="query")
    if body.query is not None:
        check_text(body.query, "query", s.max_input_chars)
    if body.queries is not None:
        check_texts(body.queries, s.max_inputs, s.max_input_chars, "queries")
    if body.vectors is not None:
        check_count(len(body.vectors), s.max_inputs, "vectors", "vectors", " per request")
    _k(request, body.k)
    check_where(request, body.where)
    check_where(request, body.where_document, "where_document")
    col = await open_collection(request, name)
    query: Any = next(getattr(body, f) for f in given)
    if body.vectors is not None:
        query = np.asarray(body.vectors, np.float32)
    options = {"k": body.k, "where": body.where, "where_document": body.where_document}
    found: list[Any] = await _call(
        col.search, query, mode=body.mode, include=body.include, **options
    )
    if body.query is not None or body.vector is not None:
        return SearchResponse.model_validate({"hits": [h.to_dict() for h in found]})
    return BatchSearchResponse.model_validate(
        {"results": [{"hits": [h.to_dict() for h in hits]} for hits in found]}
    )


@router.post(
    "/{name}/recommend", response_model=RecommendResponse, responses=ERRORS, dependencies=Read
)
async def recommend(
    name: CollectionName, body: RecommendRequest, request: Request
) -> RecommendResponse:
    """Items like `like` / `history` and unlike `unlike`, excluding inputs and `exclude`."""
    from embedbox.tasks.recommend import RecommendOptions
    from embedbox.tasks.recommend import recommend as run

    _k(request, body.k)
    check_where(request, body.where)
    col = await open_collection(request, name)
    options = RecommendOptions(k=body.k, diversity=body.diversity)
    recs = await _call(
        run,
        col,
        body.like,
        body.unlike,
        history=body.history,
        exclude=body.exclude,
        where=body.where,
        options=options,
    )
    return RecommendResponse.model_validate({"items": [r.to_dict() for r in recs]})
