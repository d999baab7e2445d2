"""sentence-transformers' own fast backends, served to `embed_throughput.py` from another venv.

Their packages (optimum-onnx, optimum-intel) pin a transformers or torch that would replace
embedbox's, so they live in a venv of their own, e.g.:

    python3 -m venv /tmp/st && /tmp/st/bin/pip install torch==2.13.0 'sentence-transformers[onnx]'
    python3 -m venv /tmp/stov && /tmp/stov/bin/pip install torch==2.14.1 'sentence-transformers[openvino]'
    .venv/bin/python benchmarks/embed_throughput.py --st-python /tmp/st/bin/python \
        --st-python /tmp/stov/bin/python

This file imports only sentence-transformers (not embedbox). It reads one JSON request a line on
stdin and answers one JSON line on stdout; texts come in and vectors go out as files:
    {"setup": MODEL_DIR, "work": DIR}         -> {"engines": [...], "notes": {...}}
    {"encode": ENGINE, "texts": JSON_FILE}    -> {"seconds": S, "vectors": NPY_FILE}
    {"latency": ENGINE, "texts": JSON_FILE}   -> {"p50_ms": MS}  (one text at a time)
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _int8_config() -> str:
    """ONNX Runtime's dynamic-int8 config for this CPU (what sentence-transformers' docs advise)."""
    flags = Path("/proc/cpuinfo").read_text().split()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def setup(model_dir: str, work: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Load the ONNX Runtime engines (plain, O3-optimised, dynamic int8 exports) and OpenVINO,
    as far as this venv has their packages. Exports are written to a copy of the model in
    `work` (a fresh folder), never into the installed one."""
    from sentence_transformers import SentenceTransformer

    local = work / "model"
    shutil.copytree(model_dir, local)
    engines: dict[str, Any] = {}
    notes: dict[str, str] = {}

    def attempt(name: str, load: Any) -> None:
        try:
            engines[name] = load()
        except Exception as exc:  # a missing optimum package, an export that fails
            notes[name] = f"not available: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"

    def onnx(file: str, export: Any = None) -> Any:
        if export is not None:
            export(engines["st-onnx"], str(local))
        kwargs = {"file_name": file}
        return SentenceTransformer(str(local), backend="onnx", device="cpu", model_kwargs=kwargs)

    attempt("st-onnx", lambda: onnx("model.onnx"))  # exports model.onnx when missing
    if "st-onnx" in engines:
        from sentence_transformers import (
            export_dynamic_quantized_onnx_model,
            export_optimized_onnx_model,
        )

        config = _int8_config()
        quantised = f"model_qint8_{config}.onnx" if config != "avx2" else "model_quint8_avx2.onnx"
        engines["st-onnx"].save_pretrained(str(local))  # the exports start from model.onnx
        attempt(
            "st-onnx-O3",
            lambda: onnx("model_O3.onnx", lambda m, d: export_optimized_onnx_model(m, "O3", d)),
        )
        attempt(
            f"st-onnx-int8-{config}",
            lambda: onnx(quantised, lambda m, d: export_dynamic_quantized_onnx_model(m, config, d)),
        )
    attempt(
        "st-openvino", lambda: SentenceTransformer(str(local), backend="openvino", device="cpu")
    )
    return engines, notes


def main() -> None:
    warnings.filterwarnings("ignore")
    engines: dict[str, Any] = {}
    work = Path(".")
    for line in sys.stdin:
        req = json.loads(line)
        if "setup" in req:
            work = Path(req["work"])
            engines, notes = setup(req["setup"], work)
            print(json.dumps({"engines": list(engines), "notes": notes}), flush=True)
            continue
        name = req.get("encode") or req["latency"]
        model = engines[name]
        texts = json.loads(Path(req["texts"]).read_text(encoding="utf-8"))
        if "encode" in req:
            start = time.perf_counter()
            v = model.encode(texts, batch_size=32, normalize_embeddings=True)
            seconds = time.perf_counter() - start
            out = work / f"{name}.npy"
            np.save(out, np.asarray(v, np.float32))
            answer: dict[str, Any] = {"seconds": seconds, "vectors": str(out)}
        else:
            model.encode([texts[0]])
            times = []
            for t in texts:
                start = time.perf_counter()
                model.encode([t])
                times.append(time.perf_counter() - start)
            answer = {"p50_ms": statistics.median(times) * 1000}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
