"""What `embedbox train` takes (`TrainOptions`) and what it reports (`TrainReport`).

Kept apart from train.py so the loop and the model card can name them without importing the
module that drives them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from embedbox.errors import InputError
from embedbox.tasks.train_data import Fields, Objective

__all__ = ["Keep", "LabelLoss", "Precision", "TrainOptions", "TrainReport"]

LabelLoss = Literal["contrastive", "triplet"]
Keep = Literal["best", "last"]
Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class TrainOptions:
    """How to train. The defaults suit a CPU and a model that is already a good sentence model
    (all-MiniLM-L6-v2 and the like): one epoch, a small learning rate with warm-up, and the
    checkpoint that scores best on the held-out split kept.

    `eval_data`: a file of held-out examples; otherwise `eval_fraction` of the data (at most
    2 000 examples) is held out with `seed`. `evals_per_epoch` > 1 evaluates (and checkpoints)
    within epochs, `patience` stops after that many evaluations without a gain. `matryoshka`:
    vector sizes to train for (the full size is added). `label_loss` for labelled texts:
    "contrastive" (SetFit-style same/different-label pairs, `pairs_per_text` each) or "triplet"
    (batch-hard triplets). `mine_negatives`: give each (anchor, positive) pair a hard negative
    found by searching the training positives with the base model. `precision`: "bf16" trains
    under bf16 autocast (weights and optimiser stay fp32); "auto" picks it where the hardware
    computes bf16 natively (a CPU with AVX-512 BF16 or AMX, a CUDA GPU that supports it), else
    fp32.
    """

    objective: Objective | None = None
    fields: Fields = field(default_factory=Fields)
    eval_data: str | Path | None = None
    eval_fraction: float = 0.1
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup: float = 0.1
    max_steps: int | None = None
    evals_per_epoch: int = 1
    patience: int | None = None
    keep: Keep = "best"
    matryoshka: tuple[int, ...] = ()
    label_loss: LabelLoss = "contrastive"
    pairs_per_text: int = 4
    mine_negatives: bool = False
    max_seq_length: int | None = None
    threads: int | None = None
    precision: Precision = "auto"
    seed: int = 0
    overwrite: bool = False
    keep_checkpoints: bool = False

    def check(self) -> None:
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "evals_per_epoch": self.evals_per_epoch,
            "pairs_per_text": self.pairs_per_text,
        }
        for name, value in positive.items():
            if not value > 0:
                raise InputError(f"{name} must be positive, got {value}")
        if not 0 <= self.warmup < 1:
            raise InputError(f"warmup is a fraction of the steps, in [0, 1); got {self.warmup}")
        limits: tuple[tuple[str, int | None], ...] = (
            ("max_steps", self.max_steps),
            ("patience", self.patience),
            ("threads", self.threads),
            ("max_seq_length", self.max_seq_length),
        )
        for limit, count in limits:
            if count is not None and count < 1:
                raise InputError(f"{limit} must be at least 1, got {count}")
        if self.keep not in ("best", "last"):
            raise InputError(f"keep must be 'best' or 'last', not {self.keep!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if self.label_loss not in ("contrastive", "triplet"):
            raise InputError(f"label_loss must be contrastive or triplet, not {self.label_loss!r}")
        if self.patience is not None and self.keep != "best":
            raise InputError("patience (early stopping) needs keep='best'")
        if self.batch_size < 4 and self.label_loss == "triplet":
            raise InputError("batch-hard triplets need a batch size of at least 4")


@dataclass(frozen=True)
class TrainReport:
    """What a training run did and whether it helped: `before` (base model) and `after`
    (result) are metrics on the held-out split; `metric` names the one that decides `better`;
    `recommended` is the output folder when it is better, else the base model."""

    base: str
    output: str
    objective: Objective
    loss: str
    train_examples: int
    train_rows: int
    held_out: int
    held_out_source: str
    metric: str
    before: dict[str, float]
    after: dict[str, float]
    better: bool
    recommended: str
    steps: int
    epochs: float
    seconds: float
    seconds_per_epoch: float | None
    peak_memory_mib: float
    resumed_from_step: int | None
    kept_step: int | None
    matryoshka_dims: list[int]
    settings: dict[str, Any]
    history: list[dict[str, float]]
    notes: list[str]

    @property
    def verdict(self) -> str:
        """One plain sentence: is the fine-tuned model better on held-out data?"""
        b, a = self.before[self.metric], self.after[self.metric]
        if self.better:
            return (
                f"The fine-tuned model is better than {self.base} on the held-out split "
                f"({self.metric} {a:.4f} vs {b:.4f}): use {self.output}."
            )
        return (
            f"The fine-tuned model is not better than {self.base} on the held-out split "
            f"({self.metric} {a:.4f} vs {b:.4f}): keep using {self.base}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}
