"""`create_app(settings)`: the FastAPI application behind `embedbox serve`."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import embedbox
from embedbox.embed import Embedder
from embedbox.server import docs, native, openai, ui
from embedbox.server.errors import install_handlers, log
from embedbox.server.limits import BodyLimitMiddleware
from embedbox.server.metrics import Metrics, MetricsMiddleware
from embedbox.server.pool import ModelPool
from embedbox.server.settings import ServerSettings

DESCRIPTION = """Local embeddings over HTTP.

* `POST /v1/embeddings` and `GET /v1/models` follow the OpenAI API (point any OpenAI client here).
* The native API embeds, compares and manages collections.
* Errors are always `{"error": {"message", "type", "param", "code"}}`.
* With API keys configured, send `Authorization: Bearer <key>`; collection writes need a
  read-write key.
"""


def create_app(
    settings: ServerSettings | None = None,
    preloaded: Mapping[str, Embedder] | None = None,
) -> FastAPI:
    """Build the app. `preloaded` maps model names to ready `Embedder`s (tests, embedding hosts)."""
    settings = settings or ServerSettings()
    settings.check()
    metrics = Metrics()
    pool = ModelPool(settings, metrics, preloaded)
    pool.check_available()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.start()
        try:
            yield
        finally:
            await pool.stop()  # queued requests finish first
            if app.state.collections is not None:
                app.state.collections.close_all()  # flush indexes; SQLite commits are durable

    app = FastAPI(
        title="embedbox",
        version=embedbox.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local files by server.docs
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.pool = pool
    install_handlers(app)
    app.include_router(openai.router)
    app.include_router(native.router)
    app.include_router(native.ops)
    app.state.collections = _include_collections(app, settings)
    _install_optional(app, "embedbox.server.words", "words")
    _install_optional(app, "embedbox.server.images", "images")
    ui.install(app)  # the web explorer at /ui
    docs.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.auth_enabled:
        _declare_bearer(app)
    return app


def _include_collections(app: FastAPI, settings: ServerSettings) -> Any:
    """Collection routes need the store extra (faiss-cpu); without it they are left out."""
    try:
        module = importlib.import_module("embedbox.server.collections")
    except ImportError as exc:
        log.warning("collection routes disabled: %s (pip install 'embedbox[store]')", exc)
        return None
    app.include_router(module.router)
    return module.CollectionCache(settings.data_dir)


def _install_optional(app: FastAPI, module: str, extra: str) -> None:
    """Routes of an optional family (their packages load on first use, not here)."""
    try:
        importlib.import_module(module).install(app)
    except ImportError as exc:
        log.warning("%s routes disabled: %s (pip install 'embedbox[%s]')", extra, exc, extra)


def _declare_bearer(app: FastAPI) -> None:
    """Document Bearer auth in the OpenAPI schema when keys are configured."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base()
            comps = schema.setdefault("components", {})
            comps.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
            for path, ops in schema.get("paths", {}).items():
                if path in ("/health", "/ready"):
                    continue
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
