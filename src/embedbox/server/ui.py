"""The web explorer at `/ui`: static page (plain HTML/JS/CSS, no build step) plus the few JSON
routes only the page needs. Everything else the page does goes through the public native API
(`/collections/...`, `/similarity`), with the same API keys.

    GET /ui/                                     the page (no key needed: it holds no data)
    GET /ui/api/collections/{name}/fields        metadata fields, types and common values
    GET /ui/api/collections/{name}/map           2-D projection + clusters (sampled when large)
    GET /ui/api/collections/{name}/items/{id}/thumbnail   an item's image, only from a path
                                                 stored in that item's metadata
"""

from __future__ import annotations

import io
import json
import random
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from embedbox.errors import InputError, require
from embedbox.images import IMAGE_SUFFIXES
from embedbox.server.auth import require_read
from embedbox.server.errors import ApiError
from embedbox.server.limits import CollectionName
from embedbox.server.service import ERRORS
from embedbox.tasks.projection import ProjectMethod

STATIC_DIR = Path(__file__).with_name("static")
IMAGE_KEYS = ("image", "image_path", "path", "file")
MAX_POINTS = 2000  # a map above this many items is drawn from a seeded random sample
MAX_META_CHARS = 80  # longer metadata strings are left out of map points

router = APIRouter(prefix="/ui/api", tags=["ui"], dependencies=[Depends(require_read)])


def install(app: FastAPI) -> None:
    """Serve the page at `/ui/` and the UI routes (collection routes need the store extra)."""

    @app.get("/ui", include_in_schema=False)
    async def _ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    if getattr(app.state, "collections", None) is not None:
        app.include_router(router)
    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")


async def _open(request: Request, name: str) -> Any:
    from embedbox.server.collections import open_collection

    return await open_collection(request, name)


# ---- fields --------------------------------------------------------------------------------
def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def describe_fields(metadatas: list[dict[str, Any]], top: int = 20) -> list[dict[str, Any]]:
    """Per metadata key: how many items have it, its value types and its commonest values."""
    present: Counter[str] = Counter()
    types: dict[str, set[str]] = {}
    values: dict[str, Counter[Any]] = {}
    for meta in metadatas:
        for key, value in meta.items():
            present[key] += 1
            types.setdefault(key, set()).add(_type_name(value))
            items = value if isinstance(value, list) else [value]
            for v in items:
                if isinstance(v, str | int | float | bool) and len(str(v)) <= MAX_META_CHARS:
                    values.setdefault(key, Counter())[v] += 1
    out = []
    for key in sorted(present):
        counts = values.get(key, Counter())
        out.append(
            {
                "name": key,
                "count": present[key],
                "types": sorted(types[key]),
                "distinct": len(counts),
                "values": [v for v, _ in counts.most_common(top)],
            }
        )
    return out


@router.get("/collections/{name}/fields", responses=ERRORS)
async def fields(
    name: CollectionName, request: Request, scan: Annotated[int, Query(ge=1, le=20_000)] = 5000
) -> dict[str, Any]:
    """Collection info plus its metadata fields (from the first `scan` items)."""
    col = await _open(request, name)

    def run() -> dict[str, Any]:
        info = col.info()
        metas: list[dict[str, Any]] = []
        for item in col.items():
            metas.append(item.metadata)
            if len(metas) >= scan:
                break
        has_images = any(_image_value(m) is not None for m in metas)
        info.pop("path", None)  # the server's file layout is not the page's business
        return {
            "info": info,
            "fields": describe_fields(metas),
            "scanned": len(metas),
            "images": has_images,
        }

    return await run_in_threadpool(run)


# ---- map -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MapKey:
    name: str
    created: str  # a dropped and recreated collection can reach the same generation
    generation: int
    method: str
    max_points: int


class MapCache:
    """The last few maps computed, as JSON (projection and k-means cost seconds on big
    collections)."""

    def __init__(self, size: int = 8) -> None:
        self._maps: OrderedDict[MapKey, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key: MapKey) -> bytes | None:
        with self._lock:
            found = self._maps.get(key)
            if found is not None:
                self._maps.move_to_end(key)
            return found

    def put(self, key: MapKey, value: bytes) -> None:
        with self._lock:
            self._maps[key] = value
            while len(self._maps) > self.size:
                self._maps.popitem(last=False)


def _map_cache(request: Request) -> MapCache:
    state = request.app.state
    with _STATE_LOCK:
        if getattr(state, "ui_maps", None) is None:
            state.ui_maps = MapCache()
    cache: MapCache = state.ui_maps
    return cache


_STATE_LOCK = threading.Lock()


def _short_meta(meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, str) and len(value) > MAX_META_CHARS:
            continue
        if isinstance(value, dict):
            continue
        out[key] = value
    return out


def map_clusters(vectors: Any, seed: int = 0) -> Any:
    """k-means colours for a map, fast enough for a page: vectors reduced to 32 dimensions
    (PCA), k in 2..10 picked by silhouette on a sample. (`embedbox cluster` does the full job.)"""
    import numpy as np

    require("sklearn", "tasks")
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    from embedbox.similarity import normalize

    x = normalize(np.asarray(vectors, dtype=np.float32))
    n = len(x)
    if n < 4:
        return np.zeros(n, dtype=np.int64)
    dims = min(32, x.shape[1], n)
    z = PCA(dims, random_state=seed).fit_transform(x) if x.shape[1] > dims else x
    best: tuple[float, Any] | None = None
    for k in range(2, max(2, min(10, n // 5)) + 1):
        labels = KMeans(k, n_init=2, random_state=seed).fit_predict(z)
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(z, labels, sample_size=min(800, n), random_state=seed))
        if best is None or score > best[0]:
            best = (score, labels)
    return np.zeros(n, dtype=np.int64) if best is None else np.asarray(best[1], dtype=np.int64)


def build_map(col: Any, method: ProjectMethod, max_points: int, seed: int = 0) -> dict[str, Any]:
    """Project (a seeded sample of) a collection to 2-D and cluster it with k-means."""
    import numpy as np

    from embedbox.tasks.projection import project

    ids, vectors = col.vectors()
    total = len(ids)
    if total < 2:
        raise InputError(f"collection {col.name!r} has {total} items; a map needs at least 2")
    sampled = total > max_points
    if sampled:
        keep = sorted(random.Random(seed).sample(range(total), max_points))
        ids = [ids[i] for i in keep]
        vectors = vectors[keep]
    coords = project(vectors, method, seed)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    coords = (coords - lo) / np.maximum(hi - lo, 1e-9)  # 0..1 on both axes
    n = len(ids)
    labels = map_clusters(vectors, seed)
    items = {it.id: it for it in col.get(ids)}
    points = [
        {
            "id": doc_id,
            "x": round(float(coords[i, 0]), 5),
            "y": round(float(coords[i, 1]), 5),
            "cluster": int(labels[i]),
            "text": items[doc_id].text[:300],
            "metadata": _short_meta(items[doc_id].metadata),
        }
        for i, doc_id in enumerate(ids)
    ]
    note = (
        f"Showing a random sample of {n} of {total} items (seed {seed}); "
        "search still covers every item."
        if sampled
        else ""
    )
    return {
        "name": col.name,
        "method": method,
        "total": total,
        "shown": n,
        "sampled": sampled,
        "note": note,
        "clusters": len(set(labels.tolist()) - {-1}),
        "points": points,
    }


@router.get("/collections/{name}/map", responses=ERRORS)
async def collection_map(
    name: CollectionName,
    request: Request,
    method: ProjectMethod = "pca",
    max_points: Annotated[int, Query(ge=2, le=20_000)] = MAX_POINTS,
) -> Response:
    """2-D map of the collection: one point per item (a seeded sample above `max_points`),
    coordinates scaled to 0..1, k-means cluster labels, short text and metadata for hover."""
    col = await _open(request, name)
    generation = await run_in_threadpool(lambda: col.generation)
    key = MapKey(name, str(col.meta.get("created")), generation, method, max_points)
    cache = _map_cache(request)
    body = cache.get(key)
    if body is None:
        found = await run_in_threadpool(build_map, col, method, max_points)
        body = json.dumps(found, separators=(",", ":")).encode()
        cache.put(key, body)
    return Response(body, media_type="application/json")


# ---- thumbnails ----------------------------------------------------------------------------
def _image_value(meta: dict[str, Any]) -> str | None:
    for key in IMAGE_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and Path(value).suffix.lower() in IMAGE_SUFFIXES:
            return value
    return None


def thumbnail_bytes(path: Path, size: int) -> bytes:
    """A JPEG no larger than size x size (aspect kept)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.thumbnail((size, size))
            out = io.BytesIO()
            img.convert("RGB").save(out, format="JPEG", quality=85)
            return out.getvalue()
    except (OSError, UnidentifiedImageError) as exc:
        raise ApiError(
            404, f"cannot read the image for this item: {exc}", code="not_found"
        ) from None


@router.get(
    "/collections/{name}/items/{item_id:path}/thumbnail",
    responses={**ERRORS, 200: {"content": {"image/jpeg": {}}}},
    response_class=Response,
)
async def thumbnail(
    name: CollectionName,
    item_id: str,
    request: Request,
    size: Annotated[int, Query(ge=16, le=1024)] = 160,
) -> Response:
    """The item's image, shrunk. Only a path stored in that item's metadata (`image`,
    `image_path`, `path` or `file`, with an image suffix) is ever read; `item_id` is an id
    (image collections use the file's path as id, hence the path converter), never a path."""
    col = await _open(request, name)
    item = (await run_in_threadpool(col.get, [item_id]))[0]
    value = _image_value(item.metadata)
    if value is None:
        raise ApiError(404, f"item {item_id!r} has no image path in its metadata", code="no_image")
    path = Path(value).expanduser()
    if not path.is_file():
        raise ApiError(404, f"the image file of item {item_id!r} is missing", code="not_found")
    data = await run_in_threadpool(thumbnail_bytes, path, size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})
