"""The sentence-transformers side of `embedbox train`: model, loss, data set, trainer, checkpoints.

Imported only when training (it needs the `train` extra: sentence-transformers, datasets,
accelerate). The loop itself is sentence-transformers' `SentenceTransformerTrainer`; this module
chooses its loss and settings from the data and embedbox's options.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.evaluation import BaseEvaluator
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer import losses
from sentence_transformers.sentence_transformer import modules as st_modules
from transformers import EarlyStoppingCallback, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from embedbox.tasks.train_data import Examples
from embedbox.tasks.train_eval import HEADLINE, Encode, evaluate

if TYPE_CHECKING:
    from embedbox.tasks.train_options import TrainOptions

Progress = Callable[[int, int], None]
CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"  # written last into a checkpoint: it marks a complete one


def load_model(path: Path, max_seq_length: int | None) -> SentenceTransformer:
    """The base model as sentence-transformers loads it. A plain Hugging Face folder gets mean
    pooling and normalisation, as embedbox embeds with it."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _quiet()
    if (path / "modules.json").is_file():
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    else:
        word = st_modules.Transformer(str(path))
        pooling = st_modules.Pooling(word.get_embedding_dimension(), "mean")
        model = SentenceTransformer(modules=[word, pooling, st_modules.Normalize()], device=device)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def _quiet() -> None:
    """Training logs go to embedbox's progress and report, not to stdout (which may be JSON)."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    for name in ("sentence_transformers", "transformers", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def encoder(model: SentenceTransformer) -> Encode:
    def encode(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            out = model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, np.float32)

    return encode


# ---- what to train on -----------------------------------------------------------------------
@dataclass
class Plan:
    """The data set, loss and batch sampler for one objective, and what they are called."""

    dataset: Dataset
    loss: torch.nn.Module
    sampler: BatchSamplers
    loss_name: str
    size: int
    notes: list[str] = field(default_factory=list)


def plan(model: SentenceTransformer, examples: Examples, opts: TrainOptions) -> Plan:
    """Sentence-transformers' loss for the data's shape, wrapped in MatryoshkaLoss if asked."""
    notes: list[str] = []
    if examples.objective == "pairs":
        # In-batch negatives: a text twice in one batch would be its own negative.
        dataset = Dataset.from_dict(examples.columns)
        loss: torch.nn.Module = losses.MultipleNegativesRankingLoss(model)
        sampler, name = BatchSamplers.NO_DUPLICATES, "MultipleNegativesRankingLoss"
        if examples.has_negatives:
            notes.append("hard negatives: one per pair")
    elif examples.objective == "scored":
        dataset = Dataset.from_dict(examples.columns)
        loss, sampler, name = losses.CoSENTLoss(model), BatchSamplers.BATCH_SAMPLER, "CoSENTLoss"
    elif opts.label_loss == "triplet":
        labels = sorted(set(examples.column("label")))
        ids = {lab: i for i, lab in enumerate(labels)}
        dataset = Dataset.from_dict(
            {"text": examples.column("text"), "label": [ids[x] for x in examples.column("label")]}
        )
        loss = losses.BatchHardTripletLoss(
            model,
            distance_metric=losses.BatchHardTripletLossDistanceFunction.cosine_distance,
            margin=0.5,
        )
        sampler, name = BatchSamplers.GROUP_BY_LABEL, "BatchHardTripletLoss (cosine, margin 0.5)"
    else:
        pairs = contrastive_pairs(examples, opts.pairs_per_text, opts.seed)
        dataset = Dataset.from_dict(pairs)
        loss = losses.CosineSimilarityLoss(model)
        sampler, name = BatchSamplers.BATCH_SAMPLER, "CosineSimilarityLoss on label pairs"
        notes.append(
            f"{len(pairs['label'])} SetFit-style pairs from {len(examples)} texts "
            f"({opts.pairs_per_text} per text, half same label, half another)"
        )
    if opts.matryoshka:
        loss = losses.MatryoshkaLoss(model, loss, list(opts.matryoshka))
        name = f"MatryoshkaLoss({name}, dims {', '.join(map(str, opts.matryoshka))})"
    return Plan(dataset, loss, sampler, name, len(dataset), notes)


def contrastive_pairs(examples: Examples, per_text: int, seed: int) -> dict[str, list[Any]]:
    """SetFit-style pairs: for each text, texts of the same label (score 1) and of another
    label (score 0), alternating (so half the pairs are each, even at one pair a text), drawn
    with a fixed seed."""
    rng = random.Random(seed)
    texts, labels = examples.column("text"), examples.column("label")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        by_label[lab].append(i)
    others = {lab: [i for i in range(len(texts)) if labels[i] != lab] for lab in by_label}
    a: list[str] = []
    b: list[str] = []
    score: list[float] = []
    for i, lab in enumerate(labels):
        same = by_label[lab]
        for r in range(per_text):
            if (i + r) % 2 == 0:
                j = i
                while j == i:
                    j = rng.choice(same)
                a.append(texts[i])
                b.append(texts[j])
                score.append(1.0)
            else:
                a.append(texts[i])
                b.append(texts[rng.choice(others[lab])])
                score.append(0.0)
    order = list(range(len(a)))
    rng.shuffle(order)
    return {
        "sentence1": [a[i] for i in order],
        "sentence2": [b[i] for i in order],
        "label": [score[i] for i in order],
    }


# ---- evaluation during training ------------------------------------------------------------
class HeldOut(BaseEvaluator):  # type: ignore[misc]
    """The held-out metrics as a sentence-transformers evaluator (picks the best checkpoint)."""

    def __init__(self, held: Examples, train: Examples) -> None:
        super().__init__()
        self.held, self.train = held, train
        self.primary_metric = HEADLINE[held.objective]
        self.greater_is_better = True

    def __call__(
        self,
        model: Any,
        output_path: str | None = None,
        epoch: float = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        return evaluate(encoder(model), self.held, self.train)


class _Progress(TrainerCallback):  # type: ignore[misc]
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.progress(int(state.global_step), int(state.max_steps))


class _Trainer(SentenceTransformerTrainer):  # type: ignore[misc]
    """The trainer without its model-card callback: embedbox writes its own card (and the
    callback's widget examples cost a pass over the data)."""

    def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
        return None


# ---- checkpoints ----------------------------------------------------------------------------
def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint; ones a kill left half-written are removed."""
    if not folder.is_dir():
        return None
    found = sorted(
        (p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
        key=lambda p: int(p.name[11:]),
        reverse=True,
    )
    for path in found:
        if (path / STATE_FILE).is_file():
            return path
        shutil.rmtree(path, ignore_errors=True)
    return None


def checkpoint_step(path: Path) -> int:
    return int(json.loads((path / STATE_FILE).read_text())["global_step"])


# ---- the run --------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What the trainer did: steps, epochs, the evaluations and which checkpoint was kept."""

    steps: int
    epochs: float
    history: list[dict[str, float]]
    best_step: int | None
    train_seconds: float


def uses_bf16(precision: str) -> bool:
    """Whether to train under bf16 autocast. On a CPU with native bf16 (an AVX-512 BF16 EPYC,
    CoSENT on STS-B, all-MiniLM-L6-v2, batch 32, 3 epochs) a step took 0.59 s against fp32's
    1.26 s, for the same test Spearman (0.8313)."""
    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    from embedbox import hardware

    return hardware.cpu_has_fast_bf16()


def run(
    model: SentenceTransformer,
    planned: Plan,
    evaluator: HeldOut,
    opts: TrainOptions,
    folder: Path,
    resume: Path | None,
    progress: Progress | None,
    callbacks: Sequence[TrainerCallback],
) -> Outcome:
    steps_per_epoch = max(1, -(-planned.size // opts.batch_size))
    by_steps = opts.evals_per_epoch > 1
    every = max(1, steps_per_epoch // opts.evals_per_epoch)
    headline = "eval_" + HEADLINE[evaluator.held.objective]
    args = SentenceTransformerTrainingArguments(
        output_dir=str(folder),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps or -1,
        per_device_train_batch_size=opts.batch_size,
        learning_rate=opts.learning_rate,
        warmup_steps=opts.warmup,  # below 1: a fraction of all steps
        weight_decay=0.01,
        eval_strategy="steps" if by_steps else "epoch",
        save_strategy="steps" if by_steps else "epoch",
        eval_steps=every,
        save_steps=every,  # both only used when by steps
        save_total_limit=2,  # the newest and the best
        load_best_model_at_end=opts.keep == "best",
        metric_for_best_model=headline,
        greater_is_better=True,
        logging_steps=max(1, every // 4),
        batch_sampler=planned.sampler,
        seed=opts.seed,
        data_seed=opts.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        bf16=uses_bf16(opts.precision),
    )
    extra: list[TrainerCallback] = list(callbacks)
    if progress is not None:
        extra.append(_Progress(progress))
    if opts.patience is not None:
        extra.append(EarlyStoppingCallback(early_stopping_patience=opts.patience))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation chatter from the libraries
        trainer = _Trainer(
            model=model,
            args=args,
            train_dataset=planned.dataset,
            loss=planned.loss,
            evaluator=evaluator,
            callbacks=extra,
        )
    trainer.remove_callback(PrinterCallback)  # it prints logs to stdout
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - start
    state = trainer.state
    history = [
        {"step": int(e["step"]), "epoch": float(e.get("epoch", 0.0))}
        | {k[5:]: float(v) for k, v in e.items() if k.startswith("eval_") and not _timing(k)}
        for e in state.log_history
        if headline in e
    ]
    best = state.best_model_checkpoint if opts.keep == "best" else None
    return Outcome(
        steps=int(state.global_step),
        epochs=float(state.epoch or 0.0),
        history=history,
        best_step=int(Path(best).name[11:]) if best else None,
        train_seconds=seconds,
    )


def _timing(key: str) -> bool:
    return key.endswith(("_runtime", "_per_second"))
