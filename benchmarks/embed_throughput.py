"""Throughput and fidelity of every embedbox backend x compute vs sentence-transformers, in one run.

    .venv/bin/python benchmarks/embed_throughput.py [--n 2000] [--rounds 3] [--device cpu|cuda]
        [--engines auto,torch/fp32,...] [--isa avx2] [--batch-tokens N] [--compile] [--json FILE]
        [--st-python /path/to/other-venv/bin/python]

Reference: sentence-transformers `encode` with its defaults (batch 32; fp32 on CPU, fp16 on
CUDA), on the same texts (STS-B sentences and Lee news articles, >= 2 000), in the same process.
Also compared: sentence-transformers' own fast backends (ONNX Runtime plain, O3-optimised and
dynamic int8 exports; OpenVINO). Their optimum packages pin another transformers or torch, so
they run from a venv of their own (`--st-python`, see `st_worker.py`) in a worker process that
takes its turn in the same alternating rounds.

For each engine: texts/s (best of `--rounds` rounds that alternate between the engines, so that
load on a shared machine hits all alike), the ratio to the reference, min / mean cosine to the
reference vectors, recall@10 against the reference (top-10 neighbours of 500 queries among all
texts), STS-B test Spearman, and single-text latency p50 (`embed_one`, 50 texts).

`--isa avx2` reruns everything in a child process with AVX2 caps (`ONEDNN_MAX_CPU_ISA=AVX2`,
`MKL_ENABLE_INSTRUCTIONS=AVX2`, `ATEN_CPU_CAPABILITY=avx2`) and first reports which runtimes
honour them (the kernels oneDNN, ATen and OpenVINO's CPU plugin pick). OpenVINO's fp32 matmuls
run on MLAS, which reads CPUID and has no cap: its "AVX2" figures are not AVX2 figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# texts -> (vectors, seconds the embedding took)
Encode = Callable[[list[str]], tuple[np.ndarray, float]]

ENGINES = (
    "auto",
    "torch/fp32",
    "torch/bf16",
    "openvino/fp32",
    "openvino/bf16",
    "openvino/int8",
)


def corpus(n: int) -> list[str]:
    """Real varied texts: STS-B sentences (short) and Lee news articles (long), shuffled."""
    from embedbox.datasets import lee_background, sts_b

    texts = [t for split in ("test", "dev", "train") for p in sts_b(split) for t in (p.a, p.b)]
    texts = list(dict.fromkeys(texts))
    rng = np.random.default_rng(0)
    long = lee_background()
    chosen = [texts[i] for i in rng.choice(len(texts), size=n - n // 10, replace=False)]
    chosen += [long[i % len(long)] for i in range(n // 10)]
    rng.shuffle(chosen)
    return chosen


def timed(fn: Callable[[list[str]], Any], cuda: bool = False) -> Encode:
    import torch

    def run(texts: list[str]) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        v = fn(texts)
        if cuda:
            torch.cuda.synchronize()
        return np.asarray(v), time.perf_counter() - start

    return run


def p50_ms(fn: Callable[[str], Any]) -> Callable[[list[str]], float]:
    def run(texts: list[str]) -> float:
        fn(texts[0])
        times = []
        for t in texts:
            start = time.perf_counter()
            fn(t)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    return run


class STWorker:
    """sentence-transformers backends run by another venv's Python (`st_worker.py`)."""

    def __init__(self, python: str, model_dir: str, work: Path) -> None:
        script = str(Path(__file__).with_name("st_worker.py"))
        self.proc = subprocess.Popen(
            [python, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.work = work
        reply = self.ask({"setup": model_dir, "work": str(work)})
        self.engines: list[str] = reply["engines"]
        self.notes: dict[str, str] = reply["notes"]

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"st_worker.py exited ({self.proc.wait()}); see its stderr")
        return dict(json.loads(line))

    def _texts(self, texts: list[str]) -> str:
        path = self.work / "texts.json"
        path.write_text(json.dumps(texts), encoding="utf-8")
        return str(path)

    def encode(self, name: str) -> Encode:
        def run(texts: list[str]) -> tuple[np.ndarray, float]:
            reply = self.ask({"encode": name, "texts": self._texts(texts)})
            return np.load(reply["vectors"]), float(reply["seconds"])

        return run

    def latency(self, name: str) -> Callable[[list[str]], float]:
        return lambda texts: float(
            self.ask({"latency": name, "texts": self._texts(texts)})["p50_ms"]
        )


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def recall_at_10(reference: np.ndarray, got: np.ndarray, queries: int = 500) -> float:
    def top(v: np.ndarray) -> np.ndarray:
        sims = v[:queries] @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :10]

    a, b = top(normalise(reference)), top(normalise(got))
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def sts_spearman(encode: Encode) -> float:
    from scipy.stats import spearmanr

    from embedbox.datasets import sts_b

    pairs = sts_b("test")
    a, b = normalise(encode([p.a for p in pairs])[0]), normalise(encode([p.b for p in pairs])[0])
    return float(spearmanr((a * b).sum(1), [p.score for p in pairs]).statistic)


def isa_report() -> dict[str, str]:
    """Which ISA the runtimes' kernels use here (under whatever ONEDNN_MAX_CPU_ISA is set)."""
    out: dict[str, str] = {}
    # A large fp32 convolution runs through oneDNN in torch (its fp32 matmuls go to MKL).
    probe = (
        "import torch, torch.backends.cpu as c\n"
        "with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):\n"
        "    torch.nn.functional.conv2d(torch.randn(4, 64, 56, 56), torch.randn(64, 64, 3, 3))\n"
        "print('aten:', c.get_cpu_capability())"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    isa = [ln.split("isa:", 1)[1].strip() for ln in res.stdout.splitlines() if "isa:" in ln]
    aten = [ln.split(":", 1)[1].strip() for ln in res.stdout.splitlines() if ln.startswith("aten:")]
    out["torch oneDNN kernels"] = isa[0] if isa else "no oneDNN primitive ran"
    out["torch ATen kernels"] = aten[0] if aten else "?"
    mkl = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "(unset: MKL picks by CPUID)")
    out["torch MKL matmuls"] = f"MKL_ENABLE_INSTRUCTIONS={mkl}"
    try:
        import openvino as ov

        from embedbox.models.backends import openvino as ovb

        core = ov.Core()
        caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        param = ov.opset13.parameter([1, 384], ov.Type.f32)
        weight = ov.opset13.constant(np.ones((384, 384), np.float32))
        model = ov.Model([ov.opset13.matmul(param, weight, False, True)], [param])
        kinds = set()
        for hint in ("f32", "bf16"):
            try:
                compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
            except RuntimeError as exc:
                kinds.add(f"{hint}: does not compile ({str(exc).splitlines()[-1][:80]})")
                continue
            for op in compiled.get_runtime_model().get_ops():
                info = op.get_rt_info()
                if info["layerType"].astype(str) == "FullyConnected":
                    kinds.add(f"{hint}: {info['primitiveType'].astype(str)}")
        out[f"openvino {ovb.version()}"] = f"capabilities {list(caps)}; kernels {sorted(kinds)}"
    except ImportError:
        out["openvino"] = "not installed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--isa", choices=["avx2"], default=None)
    parser.add_argument("--no-sts", action="store_true", help="skip STS-B Spearman")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument(
        "--st-python",
        action="append",
        default=[],
        help="a Python with sentence-transformers[onnx] or [openvino] (repeatable; see top)",
    )
    args = parser.parse_args()
    if args.isa and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":
        argv = [a for a in sys.argv[1:] if a not in ("--isa", "avx2", "--isa=avx2")]
        # oneDNN's cap alone leaves torch's MKL matmuls and ATen kernels on AVX-512: cap all three.
        env = {
            **os.environ,
            "ONEDNN_MAX_CPU_ISA": "AVX2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ATEN_CPU_CAPABILITY": "avx2",
        }
        sys.exit(subprocess.call([sys.executable, __file__, *argv], env=env))

    from sentence_transformers import SentenceTransformer

    from embedbox import Embedder, hardware

    warnings.filterwarnings("ignore")
    print(f"machine: {hardware.describe()}")
    for var in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY"):
        print(f"{var}={os.environ.get(var, '(unset)')}")
    if args.device == "cpu":
        for runtime, isa in isa_report().items():
            print(f"  {runtime}: {isa}")
    texts = corpus(args.n)
    path = str(Embedder(args.model, backend="torch", compute="fp32").info.path)
    st = SentenceTransformer(path, device=args.device)
    if args.device == "cuda":
        st = st.half()

    cuda = args.device == "cuda"
    engines: dict[str, Encode] = {
        "sentence-transformers": timed(
            lambda t: st.encode(t, batch_size=32, normalize_embeddings=True), cuda
        ),
    }
    latency: dict[str, Callable[[list[str]], float]] = {
        "sentence-transformers": p50_ms(lambda t: st.encode([t]))
    }
    notes: dict[str, str] = {}
    for python in args.st_python:
        worker = STWorker(python, path, Path(tempfile.mkdtemp(prefix="st-worker-")))
        for name in worker.engines:
            if name not in engines:  # the first venv that has an engine runs it
                engines[name], latency[name] = worker.encode(name), worker.latency(name)
                notes.pop(name, None)
        notes |= {n: why for n, why in worker.notes.items() if n not in engines and n not in notes}
    if not args.st_python:
        notes["sentence-transformers onnx / openvino"] = (
            "not run: their optimum packages pin another transformers or torch; pass --st-python"
        )
    described: dict[str, dict[str, Any]] = {}
    for spec in args.engines.split(","):
        backend, _, compute = spec.partition("/")
        load = time.perf_counter()
        try:
            emb = Embedder(
                args.model,
                backend=backend,
                compute=compute or "auto",
                device=args.device,
                batch_tokens=args.batch_tokens,
                compile=args.compile,
            )
        except Exception as exc:
            notes[f"embedbox {spec}"] = f"not available: {exc}"
            continue
        d = emb.describe()
        d["load_s"] = round(time.perf_counter() - load, 2)
        name = f"embedbox {spec}"
        if (d["backend"], d["compute"]) != (backend, compute) and spec != "auto":
            notes[name] = f"runs as {d['backend']}/{d['compute']}: {d['fallback']}"
        described[name] = d
        engines[name] = timed(functools.partial(emb.embed, truncate=False), cuda)
        latency[name] = p50_ms(functools.partial(emb.embed_one, truncate=False))

    print(f"model: {args.model}; corpus: {len(texts)} texts")
    for name, d in described.items():
        extra = f", auto chose {d['measured']['winner']}" if d.get("measured") else ""
        print(
            f"  {name}: runs {d['backend']}/{d['compute']} ({d['backend_choice']}{extra}), "
            f"batch_tokens {d['batch_tokens']}, load {d['load_s']}s"
        )
    for name, note in notes.items():
        print(f"  note: {name}: {note}")

    outputs: dict[str, np.ndarray] = {}
    for name, fn in engines.items():  # warm-up (allocators, kernels; embedbox compile too)
        outputs[name] = fn(texts[:64])[0]
    best = {name: float("inf") for name in engines}
    for r in range(args.rounds):
        order = list(engines) if r % 2 == 0 else list(reversed(engines))
        for name in order:
            outputs[name], seconds = engines[name](texts)
            best[name] = min(best[name], seconds)
        print(f"  round {r + 1}/{args.rounds} done", flush=True)
    single_ms = {name: fn(texts[:50]) for name, fn in latency.items()}

    ref = normalise(outputs["sentence-transformers"])
    rows = []
    for name in engines:
        got = normalise(outputs[name])
        cos = (ref * got).sum(1)
        row = {
            "engine": name,
            "texts_per_s": round(len(texts) / best[name], 1),
            "ratio": round(best["sentence-transformers"] / best[name], 2),
            "min_cos": round(float(cos.min()), 6),
            "mean_cos": round(float(cos.mean()), 6),
            "recall@10": round(recall_at_10(ref, got), 4),
            "latency_p50_ms": round(single_ms[name], 2) if name in single_ms else None,
            "sts_b": None if args.no_sts else round(sts_spearman(engines[name]), 4),
        }
        rows.append(row)
    header = f"{'engine':34s} {'texts/s':>8s} {'x ST':>6s} {'min cos':>8s} {'mean cos':>9s} "
    header += f"{'R@10':>6s} {'STS-B':>7s} {'p50 ms':>7s}"
    print(header)
    for row in rows:
        sts = "-" if row["sts_b"] is None else f"{row['sts_b']:.4f}"
        lat = "-" if row["latency_p50_ms"] is None else f"{row['latency_p50_ms']:.2f}"
        print(
            f"{row['engine']:34s} {row['texts_per_s']:8.1f} {row['ratio']:6.2f} "
            f"{row['min_cos']:8.5f} {row['mean_cos']:9.6f} {row['recall@10']:6.3f} "
            f"{sts:>7s} {lat:>7s}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {"rows": rows, "notes": notes, "isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}, fh
            )


if __name__ == "__main__":
    main()
