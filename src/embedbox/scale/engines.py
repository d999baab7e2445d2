"""Where shards run: `local` (a pool of spawned processes) or `ray` (Ray Data actor pool).

Both call `shard.process` with a model loaded once per worker and hand each shard's summary
to `on_done` in the driver, which alone updates the manifest.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from embedbox.embed import Embedder
from embedbox.errors import EmbedboxError, require
from embedbox.scale.reader import Shard
from embedbox.scale.shard import make_embedder, process
from embedbox.scale.spec import JobSpec, available_cores

OnDone = Callable[[dict[str, Any]], None]
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "HF_HOME")

# ---- local ------------------------------------------------------------------------------
_worker: tuple[JobSpec, Embedder] | None = None


def _init_worker(spec: JobSpec, threads: int) -> None:
    global _worker
    _worker = (spec, make_embedder(spec, threads))


def _run_shard(shard: Shard) -> dict[str, Any]:
    if _worker is None:  # the pool's initializer runs first; this is a bug, not bad input
        raise EmbedboxError("the worker process was not initialised")
    return process(shard, _worker[0], _worker[1])


def run_local(
    spec: JobSpec, shards: list[Shard], on_done: OnDone, embedder: Embedder | None = None
) -> dict[str, Any]:
    """One process (`workers=1`, in the driver) or a spawned pool with a model per worker."""
    workers = min(spec.worker_count(), max(len(shards), 1))
    threads = spec.threads or max(1, available_cores() // workers)
    info = {"engine": "local", "workers": workers, "threads_per_worker": threads}
    if not shards:
        return info
    if workers == 1:
        emb = embedder or make_embedder(spec, threads)
        for shard in shards:
            on_done(process(shard, spec, emb))
        return info
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(spec, threads)
    ) as pool:
        todo: Iterator[Shard] = iter(shards)
        running: set[Future[dict[str, Any]]] = set()
        try:
            while True:
                while len(running) < 2 * workers and (nxt := next(todo, None)) is not None:
                    running.add(pool.submit(_run_shard, nxt))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    on_done(fut.result())
        except BrokenProcessPool as exc:
            raise EmbedboxError(
                "a worker process died (out of memory or killed?); finished shards are kept: "
                "rerun to resume, with fewer --workers or a smaller --shard-rows"
            ) from exc
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return info


# ---- ray ------------------------------------------------------------------------------
class ShardActor:
    """A Ray actor: loads the model once, then embeds the shards of each batch it is given."""

    def __init__(self, spec: JobSpec, threads: int, gpu: bool) -> None:
        self.spec = spec
        self.emb = make_embedder(spec, threads, device="cuda" if gpu else "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for i in range(len(batch["name"])):
            fields = {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in batch.items()}
            shard = Shard(**fields)
            try:
                result = process(shard, self.spec, self.emb)
            except EmbedboxError as exc:  # surfaces as one clear line, not a Ray traceback
                result = {"name": shard.name, "failure": str(exc)}
            out.append(json.dumps(result))
        return {"result": np.array(out, dtype=object)}


def run_ray(spec: JobSpec, shards: list[Shard], on_done: OnDone) -> dict[str, Any]:
    """Ray Data `map_batches` over the pending shards with an actor pool of `ShardActor`."""
    ray = require("ray", "scale", "--engine ray")

    started = False
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in OFFLINE_VARS if k in os.environ}
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
        if spec.address:
            ray.init(address=spec.address, **kwargs)
        else:
            ray.init(
                num_cpus=spec.workers or available_cores(),
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **kwargs,
            )
        started = True
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        num_gpus = spec.num_gpus if spec.num_gpus is not None else (1.0 if gpus else 0.0)
        cpus = int(resources.get("CPU", 1))
        if spec.workers:
            workers = spec.workers
        elif num_gpus:
            workers = max(1, int(gpus / num_gpus))
        else:
            workers = max(1, cpus // (spec.threads or 1))
        workers = min(workers, max(len(shards), 1))
        threads = spec.threads or max(1, cpus // workers)
        info = {"engine": "ray", "workers": workers, "threads_per_worker": threads, "gpus": gpus}
        if not shards:
            return info
        items = [s.to_dict() for s in shards]
        source = ray.data.from_items(items, override_num_blocks=len(items))
        ds = source.map_batches(
            ShardActor,
            fn_constructor_kwargs={"spec": spec, "threads": threads, "gpu": bool(num_gpus)},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),  # `concurrency=` is deprecated
            num_cpus=threads if not num_gpus else 1,
            num_gpus=num_gpus or None,
        )
        for row in ds.iter_rows():
            on_done(json.loads(row["result"]))
        return info
    finally:
        if started:
            ray.shutdown()
