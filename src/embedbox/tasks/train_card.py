"""The model card (`README.md`) of a model trained by `embedbox train`."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

from embedbox.tasks.train_eval import describe

if TYPE_CHECKING:
    from embedbox.tasks.train_options import TrainReport


def write_card(out: Path, report: TrainReport, data: str) -> Path:
    """Write `out/README.md`: data, objective, settings, time, before/after metrics, verdict."""
    s = report.settings
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sentence-transformers, embedbox]",
        "---",
        "",
        f"# {out.name}: {report.base} fine-tuned with embedbox",
        "",
        f"**{report.verdict}**",
        "",
        "## Held-out results",
        "",
        f"On {report.held_out_source}. Headline metric: {report.metric} "
        f"({describe(report.objective)}).",
        "",
        "| metric | base model | fine-tuned | change |",
        "|---|---:|---:|---:|",
    ]
    for name, before in report.before.items():
        after = report.after.get(name, float("nan"))
        lines.append(f"| {name} | {before:.4f} | {after:.4f} | {after - before:+.4f} |")
    if report.kept_step is not None:
        lines += [
            "",
            f"The checkpoint kept is the one that scored best on this split (step "
            f"{report.kept_step}), so these figures favour it slightly; confirm on data not "
            "used for training or selection.",
        ]
    lines += [
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{report.base}` |",
        f"| data | `{data}`: {report.train_examples} training examples ({report.objective}) |",
        f"| rows trained on | {report.train_rows} |",
        f"| loss | {report.loss} |",
        f"| epochs | {s['epochs']} (ran {report.epochs:.2f}, {report.steps} steps) |",
        f"| batch size | {s['batch_size']} |",
        f"| learning rate | {s['learning_rate']:g}, warm-up {s['warmup']:.0%} of the steps |",
        f"| evaluations | {s['evals_per_epoch']} per epoch; keep: {s['keep']}"
        + (f", patience {s['patience']}" if s["patience"] else "")
        + " |",
        f"| Matryoshka sizes | {', '.join(map(str, report.matryoshka_dims)) or 'no'} |",
        f"| seed | {s['seed']} |",
        f"| time | {report.seconds:.0f} s"
        + (
            f" ({report.seconds_per_epoch:.0f} s per epoch)"
            if report.seconds_per_epoch is not None
            else ""
        )
        + (
            f", resumed from step {report.resumed_from_step}"
            if report.resumed_from_step is not None
            else ""
        )
        + " |",
        f"| peak memory | {report.peak_memory_mib:.0f} MiB (process RSS) |",
        f"| machine | {platform.machine()}, {platform.system()}, Python "
        f"{platform.python_version()} |",
        f"| date | {time.strftime('%Y-%m-%d %H:%M', time.localtime())} |",
    ]
    for note in report.notes:
        lines.append(f"| note | {note} |")
    if report.history:
        names = [k for k in report.history[0] if k not in ("step", "epoch")]
        lines += [
            "",
            "## Evaluations during training",
            "",
            "| step | epoch | " + " | ".join(names) + " |",
            "|---:|---:|" + "---:|" * len(names),
        ]
        for point in report.history:
            cells = " | ".join(f"{point.get(n, float('nan')):.4f}" for n in names)
            lines.append(f"| {int(point['step'])} | {point['epoch']:.2f} | {cells} |")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from embedbox import Embedder",
        f'emb = Embedder("{out}")',
        "",
        "from sentence_transformers import SentenceTransformer",
        f'st = SentenceTransformer("{out}")',
        "```",
        "",
        "```bash",
        f"embedbox models register {out.name} {out}",
        f"embedbox collection reembed NAME --model {out}   # re-embed a collection with it",
        "```",
        "",
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
