"""Dynamic micro-batching: concurrent requests merged into token-budget batches.

Requests wait in a bounded asyncio queue (full -> `Overloaded`, served as 503 + Retry-After).
One worker task per model takes whatever is queued, waits up to `max_wait` for more while the
batch is under `max_batch_tokens`, and runs the model in a dedicated thread so the event loop
stays free. Results go back to each request's future in the request's own order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedbox.embed import Embedder, EmbedResult
from embedbox.errors import Overloaded, RequestTimeout
from embedbox.server.metrics import Metrics

log = logging.getLogger("embedbox.server")


def estimate_tokens(text: str) -> int:
    """Cheap upper-ish estimate used only to size batches (real counts come from the tokenizer)."""
    return len(text) // 4 + 3


@dataclass
class Job:
    texts: list[str]
    options: tuple[tuple[str, Any], ...]  # encode() keyword arguments; jobs sharing them merge
    future: asyncio.Future[EmbedResult]
    tokens: int = 0
    abandoned: bool = False
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Merge concurrent `submit` calls for one `Embedder` into few large `encode` calls."""

    def __init__(
        self,
        embedder: Embedder,
        metrics: Metrics,
        *,
        enabled: bool = True,
        max_batch_tokens: int = 8192,
        max_wait_s: float = 0.002,
        max_queue: int = 256,
    ) -> None:
        self.embedder = embedder
        self.metrics = metrics
        self.name = embedder.name
        self.enabled = enabled
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=max_queue)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"embed-{self.name}")
        self._task: asyncio.Task[None] | None = None
        self._held: Job | None = None
        self.computing = 0  # jobs in the model call under way

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"batcher-{self.name}"
        )
        self.metrics.model_loaded.labels(self.name).set(1)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Finish everything already queued, then stop the worker."""
        if self._task is not None and not self._task.done():
            await self.queue.put(None)
            await self._task
        self._executor.shutdown(wait=True)
        self.metrics.model_loaded.labels(self.name).set(0)

    # ---- requests ----------------------------------------------------------------------
    async def submit(self, texts: list[str], timeout_s: float, **options: Any) -> EmbedResult:
        """Embed `texts` with `options` (keyword arguments of `Embedder.encode`)."""
        if not self.alive:
            raise Overloaded(f"model worker for {self.name} is not running")
        loop = asyncio.get_running_loop()
        job = Job(list(texts), tuple(sorted(options.items())), loop.create_future())
        job.tokens = sum(estimate_tokens(t) for t in texts)
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.metrics.rejected.labels(self.name, "queue_full").inc()
            raise Overloaded(f"the queue for {self.name} is full") from None
        self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except TimeoutError:
            job.abandoned = True
            self.metrics.rejected.labels(self.name, "timeout").inc()
            raise RequestTimeout(f"no result within {timeout_s:g} s") from None

    # ---- worker ------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            batch, stopping = await self._collect()
            self.metrics.queue_depth.labels(self.name).set(self.queue.qsize())
            batch = [j for j in batch if not j.abandoned and not j.future.done()]
            if not batch:
                continue
            start = time.perf_counter()
            self.computing = len(batch)
            try:
                outcomes = await loop.run_in_executor(self._executor, self._compute, batch)
            finally:
                self.computing = 0
            self.metrics.batch_seconds.labels(self.name).observe(time.perf_counter() - start)
            self.metrics.batch_requests.labels(self.name).observe(len(batch))
            self.metrics.batch_inputs.labels(self.name).observe(sum(len(j.texts) for j in batch))
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    self.metrics.tokens.labels(self.name).inc(outcome.total_tokens)
                    job.future.set_result(outcome)

    async def _collect(self) -> tuple[list[Job], bool]:
        """One batch: the first job, then whatever fits the token budget within `max_wait`."""
        first = self._held if self._held is not None else await self.queue.get()
        self._held = None
        if first is None:
            return [], True
        batch, tokens = [first], first.tokens
        if not self.enabled:
            return batch, False
        deadline = time.perf_counter() + self.max_wait_s
        while tokens < self.max_batch_tokens:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            if job is None:
                return batch, True
            if tokens + job.tokens > self.max_batch_tokens:
                self._held = job  # starts the next batch
                break
            batch.append(job)
            tokens += job.tokens
        return batch, False

    def _compute(self, batch: list[Job]) -> list[EmbedResult | BaseException]:
        """Runs in the worker thread: one `encode` per group of jobs sharing their options."""
        outcomes: list[EmbedResult | BaseException] = [RuntimeError("not computed")] * len(batch)
        groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
        for n, job in enumerate(batch):
            groups.setdefault(job.options, []).append(n)
        for options, members in groups.items():
            kwargs = dict(options)
            texts = [t for n in members for t in batch[n].texts]
            try:
                merged = self._encode(texts, kwargs)
            except Exception:  # one bad job must not fail the others: retry one by one
                for n in members:
                    try:
                        outcomes[n] = self._encode(batch[n].texts, kwargs)
                    except Exception as exc:
                        outcomes[n] = exc
                continue
            start = 0
            for n in members:
                count = len(batch[n].texts)
                outcomes[n] = _slice(merged, start, count)
                start += count
        return outcomes

    def _encode(self, texts: list[str], kwargs: dict[str, Any]) -> EmbedResult:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation is reported per request instead
            return self.embedder.encode(texts, **kwargs)


def _slice(result: EmbedResult, start: int, count: int) -> EmbedResult:
    stop = start + count
    return EmbedResult(
        vectors=np.ascontiguousarray(result.vectors[start:stop]),
        token_counts=result.token_counts[start:stop],
        truncated=[i - start for i in result.truncated if start <= i < stop],
        chunked={i - start: c for i, c in result.chunked.items() if start <= i < stop},
    )
