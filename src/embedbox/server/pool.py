"""The models a server offers: loaded at start or on first use, each with its own batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool

from embedbox import models
from embedbox.catalog import catalog_name
from embedbox.embed import Embedder
from embedbox.server.batcher import MicroBatcher
from embedbox.server.errors import ApiError
from embedbox.server.metrics import Metrics
from embedbox.server.settings import ServerSettings


class ModelPool:
    """Served models by canonical name; `get` loads lazily and starts the model's batcher."""

    def __init__(
        self,
        settings: ServerSettings,
        metrics: Metrics,
        preloaded: Mapping[str, Embedder] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sources = {catalog_name(m): m for m in settings.models}
        self.names = list(self.sources)
        self.default = self.names[0]
        self.embedders: dict[str, Embedder] = {
            catalog_name(k): v for k, v in (preloaded or {}).items()
        }
        self.batchers: dict[str, MicroBatcher] = {}
        self._lock = asyncio.Lock()
        self.load_errors: dict[str, str] = {}

    def check_available(self) -> None:
        """Resolve every model's weights now (cheap), so a typo fails at start, not later."""
        for name, source in self.sources.items():
            if name not in self.embedders:
                models.resolve(source)

    def resolve(self, requested: str | None, param: str = "model") -> str:
        """The served model a request names (default when omitted); 404 otherwise."""
        if requested is None or requested == "":
            return self.default
        name = catalog_name(requested)
        if name in self.sources:
            return name
        raise ApiError(
            404,
            f"model {requested!r} is not served here; available: {', '.join(self.names)}",
            param=param,
            code="model_not_found",
        )

    def at_start(self, name: str) -> bool:
        """Loaded at start (by configuration) rather than on first use."""
        return self.settings.loads_at_start(self.sources[name])

    async def start(self) -> None:
        for name in self.names:  # preloaded embedders (tests) always get their workers
            if self.at_start(name) or name in self.embedders:
                await self.get(name)

    async def get(self, name: str) -> MicroBatcher:
        batcher = self.batchers.get(name)
        if batcher is not None:
            return batcher
        async with self._lock:
            if name not in self.batchers:
                embedder = self.embedders.get(name)
                if embedder is None:
                    embedder = await run_in_threadpool(self._load, name)
                    self.embedders[name] = embedder
                s = self.settings
                batcher = MicroBatcher(
                    embedder,
                    self.metrics,
                    enabled=s.batching,
                    max_batch_tokens=s.max_batch_tokens,
                    max_wait_s=s.max_wait_ms / 1000,
                    max_queue=s.max_queue,
                )
                batcher.name = name
                batcher.start()
                self.batchers[name] = batcher
            return self.batchers[name]

    def _load(self, name: str) -> Embedder:
        s = self.settings
        try:
            return Embedder(
                self.sources[name],
                compute=s.compute,
                backend=s.backend,
                threads=s.threads,
                batch_tokens=s.batch_tokens,
            )
        except Exception as exc:
            self.load_errors[name] = str(exc)
            raise ApiError(
                503,
                f"model {name!r} could not be loaded: {exc}",
                type="server_error",
                code="model_unavailable",
            ) from exc

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """Ready when every model that should be loaded is, and every worker is alive."""
        state: dict[str, str] = {}
        for name in self.names:
            batcher = self.batchers.get(name)
            if batcher is None:
                state[name] = "error" if name in self.load_errors else "not loaded"
            else:
                state[name] = "ready" if batcher.alive else "worker stopped"
        must = [n for n in self.names if self.at_start(n) or n in self.batchers]
        return all(state[n] == "ready" for n in must), state

    async def stop(self) -> None:
        for batcher in self.batchers.values():
            await batcher.stop()
