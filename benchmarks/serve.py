"""HTTP serving throughput and latency: embedbox with batching on / off vs a naive server.

    .venv/bin/python benchmarks/serve.py [--clients 1,8,32] [--requests 24] [--max-seconds 20]

Each server runs in its own process on 127.0.0.1; N client threads (httpx, keep-alive) each send
`--requests` POST /v1/embeddings requests of one short STS-B sentence, bounded by
`--max-seconds` per run. Servers:
  batching  embedbox `create_app`, dynamic micro-batching on (the default)
  single    embedbox with batching off (one request per model call)
  batching-wait=MS  the same with another max_wait_ms
  naive     FastAPI + sentence-transformers: a plain `def` endpoint calling `model.encode`
All use all-MiniLM-L6-v2 in fp32 with the same torch threads (`--threads`, default: one per
core, torch's own default; on a machine shared with other heavy work, `--threads 1` is steadier
because spinning OpenMP threads then wait for each other), on the same machine, in the same run. Reported: requests/s,
p50 / p99 latency, server CPU time per request, and ratios against the naive server.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import socket
import threading
import time
from typing import Any

import numpy as np
from pydantic import BaseModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "all-MiniLM-L6-v2"


def short_texts(n: int) -> list[str]:
    from embedbox.datasets import sts_b

    texts = list(dict.fromkeys(t for p in sts_b("test") for t in (p.a, p.b)))
    rng = np.random.default_rng(0)
    return [texts[i] for i in rng.choice(len(texts), size=n, replace=False)]


class Body(BaseModel):
    input: str | list[str]
    model: str | None = None


def naive_app() -> Any:
    """What many people write first: sentence-transformers behind a FastAPI endpoint."""
    from fastapi import FastAPI
    from sentence_transformers import SentenceTransformer

    from embedbox.catalog import find

    spec = find(MODEL)
    assert spec is not None
    model = SentenceTransformer(str(spec.local_path()), device="cpu")
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: Body) -> dict[str, Any]:
        texts = [body.input] if isinstance(body.input, str) else body.input
        vecs = model.encode(texts, normalize_embeddings=True)
        return {"data": [{"embedding": v.tolist(), "index": i} for i, v in enumerate(vecs)]}

    return app


def serve(kind: str, port: int, ready: Any, threads: int) -> None:
    """Child process: build the server of `kind` and run it until terminated."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # same torch threads in every server and thread
    import torch
    import uvicorn

    torch.set_num_threads(threads)

    if kind == "naive":
        app = naive_app()
    else:
        from embedbox.server import ServerSettings, create_app

        base, _, wait = kind.partition("-wait=")  # e.g. batching-wait=0 (ms)
        settings = ServerSettings(
            port=port, compute="fp32", threads=threads, batching=base == "batching"
        )
        if wait:
            settings = dataclasses.replace(settings, max_wait_ms=float(wait))
        app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    threading.Thread(target=_signal_when_started, args=(server, ready), daemon=True).start()
    server.run()


def _signal_when_started(server: Any, ready: Any) -> None:
    while not server.started:
        time.sleep(0.05)
    ready.set()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux /proc; nan elsewhere).

    Unlike requests/s, CPU time per request barely moves with other people's load on a shared
    machine, so it is the steadier measure of how much work each server does per request.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(url: str, clients: int, requests: int, texts: list[str], max_s: float) -> dict[str, float]:
    """`clients` threads, each sending up to `requests` one-text requests; stop at `max_s`."""
    import httpx

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    clock = {"start": 0.0, "deadline": 0.0, "end": 0.0}

    def go() -> None:  # runs once, when every client is connected and warm
        clock["start"] = time.perf_counter()
        clock["deadline"] = clock["start"] + max_s

    barrier = threading.Barrier(clients, action=go)

    def client(c: int) -> None:
        with httpx.Client(timeout=120) as http:
            http.post(url, json={"input": ["warm up"], "model": MODEL})
            barrier.wait()
            for i in range(requests):
                if time.perf_counter() > clock["deadline"]:
                    break
                text = texts[(c * requests + i) % len(texts)]
                t0 = time.perf_counter()
                r = http.post(url, json={"input": [text], "model": MODEL})
                done = time.perf_counter()
                dt = done - t0
                with lock:
                    clock["end"] = max(clock["end"], done)
                    if r.status_code == 200:
                        latencies.append(dt)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(clock["end"] - clock["start"], 1e-9)
    lat = np.array(latencies) * 1000
    return {
        "requests": float(len(latencies)),
        "errors": float(errors[0]),
        "rps": len(latencies) / wall,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--requests", type=int, default=24, help="requests per client")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--servers", default="naive,single,batching")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch threads per server"
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    kinds = args.servers.split(",")
    texts = short_texts(1000)
    ctx = mp.get_context("spawn")
    urls: dict[str, str] = {}
    pids: dict[str, int] = {}
    procs = []
    try:
        for kind in kinds:  # all servers up at once; idle ones cost nothing
            port = free_port()
            ready = ctx.Event()
            proc = ctx.Process(target=serve, args=(kind, port, ready, args.threads), daemon=True)
            proc.start()
            procs.append(proc)
            if not ready.wait(180):
                raise RuntimeError(f"{kind} server did not start")
            urls[kind] = f"http://127.0.0.1:{port}/v1/embeddings"
            pids[kind] = int(proc.pid or 0)
        for kind in kinds:  # warm-up (first shapes are slow in torch), not measured
            load(urls[kind], 8, 8, texts[::-1], args.max_seconds)
        results: dict[tuple[str, int], dict[str, float]] = {}
        runs: dict[tuple[str, int], list[float]] = {}
        cpus: dict[tuple[str, int], list[float]] = {}
        loads: list[float] = []
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
        for rnd in range(args.rounds):  # alternate servers so machine load hits all alike
            for n in levels:
                for kind in kinds:
                    cpu = cpu_seconds(pids[kind])
                    r = load(urls[kind], n, args.requests, texts, args.max_seconds)
                    r["cpu_ms"] = (cpu_seconds(pids[kind]) - cpu) * 1000 / max(r["requests"], 1)
                    loads.append(os.getloadavg()[0])
                    print(
                        f"round {rnd + 1} {kind:9s} clients={n:3d}  {r['rps']:7.1f} req/s  "
                        f"p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  "
                        f"server CPU {r['cpu_ms']:5.1f} ms/req  "
                        f"({int(r['requests'])} ok, {int(r['errors'])} errors)  "
                        f"load {loads[-1]:.1f}",
                        flush=True,
                    )
                    runs.setdefault((kind, n), []).append(r["rps"])
                    cpus.setdefault((kind, n), []).append(r["cpu_ms"])
                    best = results.get((kind, n))
                    if best is None or r["rps"] > best["rps"]:
                        results[kind, n] = r
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(10)
    print(f"\n1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f}")
    print("req/s per round (spread = noise):")
    for (kind, n), values in runs.items():
        print(f"  {kind:9s} clients={n:3d}: " + ", ".join(f"{v:.1f}" for v in values))
    print("\nbest round per server (req/s, p50 / p99 ms):")
    for n in levels:
        row = "  ".join(
            f"{k} {results[k, n]['rps']:.1f} ({results[k, n]['p50']:.0f}/{results[k, n]['p99']:.0f})"
            for k in kinds
        )
        print(f"  clients={n:3d}: {row}")
    if "naive" in kinds:
        print("\nthroughput ratio vs naive FastAPI + sentence-transformers (same run):")
        for n in levels:
            base = results["naive", n]["rps"]
            parts = [f"{k} {results[k, n]['rps'] / base:.2f}x" for k in kinds if k != "naive"]
            print(f"  clients={n:3d}: " + ", ".join(parts))
    if "naive" in kinds:
        print(
            "\nserver CPU time per request, median of rounds (lower is better; steadier than req/s):"
        )
        for n in levels:
            base = float(np.median(cpus["naive", n]))
            parts = [
                f"{k} {np.median(cpus[k, n]):.1f} ms ({base / np.median(cpus[k, n]):.2f}x less)"
                for k in kinds
                if k != "naive"
            ]
            print(f"  clients={n:3d}: naive {base:.1f} ms, " + ", ".join(parts))
    if "batching" in kinds and "single" in kinds:
        print("batching on vs off:")
        for n in levels:
            ratio = results["batching", n]["rps"] / results["single", n]["rps"]
            print(f"  clients={n:3d}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
