"""Training data for `embedbox train`: read a file, tell its shape, check every record.

Three shapes, each with sentence-transformers' column names (the fields are found under those
names or common synonyms, or named explicitly):

- **pairs**: anchor, positive and optionally negative texts (retrieval, paraphrases);
- **scored** pairs: sentence1, sentence2 and a similarity score in 0-1 or 0-5 (scaled to 0-1);
- **labels**: text and label (classification, clustering).

Every problem is one `InputError` naming the file and the line (a parquet file: the row).
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, NoReturn

from embedbox.errors import InputError
from embedbox.io import iter_records, place

Objective = Literal["pairs", "scored", "labels"]
OBJECTIVES: tuple[Objective, ...] = ("pairs", "scored", "labels")
MIN_EXAMPLES = 8  # fewer cannot be split into training and held-out parts
MAX_HELD_OUT = 2000  # a carved held-out split larger than this only slows evaluation down

# Field names tried, in order, when a field is not named explicitly.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "anchor": ("anchor", "query", "sentence1", "text1", "question", "sentence_a"),
    "positive": ("positive", "document", "sentence2", "text2", "answer", "passage", "sentence_b"),
    "negative": ("negative",),
    "score": ("score", "similarity", "label"),
    "text": ("text", "sentence"),
    "label": ("label", "category", "class"),
}


@dataclass(frozen=True)
class Fields:
    """Record fields to read; None: the first of `CANDIDATES` present in the first record."""

    anchor: str | None = None
    positive: str | None = None
    negative: str | None = None
    score: str | None = None
    text: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Examples:
    """Checked training examples in sentence-transformers' column names:
    pairs have "anchor", "positive" and maybe "negative"; scored pairs "sentence1", "sentence2"
    and "score" (0-1); labels "text" and "label" (strings)."""

    objective: Objective
    columns: dict[str, list[Any]]
    source: str
    score_scale: float = 1.0  # 5.0 when the file's scores were 0-5

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def has_negatives(self) -> bool:
        return "negative" in self.columns

    def column(self, name: str) -> list[Any]:
        return self.columns[name]

    def take(self, rows: Sequence[int]) -> Examples:
        return replace(self, columns={k: [v[i] for i in rows] for k, v in self.columns.items()})

    def with_column(self, name: str, values: list[Any]) -> Examples:
        if len(values) != len(self):
            raise InputError(f"{name}: {len(values)} values for {len(self)} examples")
        return replace(self, columns={**self.columns, name: values})


def read_examples(
    path: str | Path, objective: Objective | None = None, fields: Fields | None = None
) -> Examples:
    """Read and check a jsonl / csv / parquet file of training examples."""
    if objective is not None and objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; use {', '.join(OBJECTIVES)}")
    fields = fields or Fields()
    reader: _Reader | None = None
    for number, record in iter_records(path):
        if reader is None:
            reader = _Reader(path, objective, fields, number, record)
        reader.add(number, record)
    if reader is None:
        raise InputError(
            f"{path}: no records; a training file needs one example per line (jsonl), "
            "per row (csv, parquet)"
        )
    return reader.finish()


class _Reader:
    """Fields chosen from the first record; each record checked as it comes."""

    def __init__(
        self,
        path: str | Path,
        objective: Objective | None,
        fields: Fields,
        number: int,
        first: dict[str, Any],
    ) -> None:
        self.path = path
        found = {
            role: given or next((n for n in CANDIDATES[role] if n in first), None)
            for role, given in vars(fields).items()
        }
        self.objective = objective or _infer(path, number, first, found)
        self.roles = _roles(self.objective, found)
        for role, name in self.roles.items():
            if name is None or name not in first:
                self._missing(number, first, role, name)
        if self.objective == "scored" and self.roles["score"] in (
            self.roles["anchor"],
            self.roles["positive"],
        ):
            raise InputError(f"{place(path, number)}: the score field is also a text field")
        self.first = number
        self.values: dict[str, list[Any]] = defaultdict(list)
        self.numbers: list[int] = []

    def _missing(
        self, number: int, record: dict[str, Any], role: str, name: str | None
    ) -> NoReturn:
        have = ", ".join(map(str, record)) or "none"
        option = f"--{role}-field"
        if name is None:
            raise InputError(
                f"{place(self.path, number)}: no {role} field (fields: {have}); name it with "
                f"{option}"
            )
        raise InputError(
            f"{place(self.path, number)}: no field {name!r} for the {role} (fields: {have}); "
            f"use {option}"
        )

    def add(self, number: int, record: dict[str, Any]) -> None:
        at = place(self.path, number)
        self.numbers.append(number)
        for role, name in self.roles.items():
            if record.get(name) is None or record[name] == "":
                if role == "negative":
                    raise InputError(
                        f"{at}: no {name!r} here but the first record "
                        f"({place(self.path, self.first)}) has one: mixed shapes; give every "
                        "pair a negative or none"
                    )
                self._missing_value(at, record, role, name)
            value = record[name]
            if role == "score":
                self.values[role].append(_score(at, name, value))
            elif role == "label":
                self.values[role].append(_label(at, name, value))
            else:
                self.values[role].append(_text(at, name, value))
        if self.objective == "pairs" and "negative" not in self.roles:
            name = CANDIDATES["negative"][0]
            if record.get(name) not in (None, ""):
                raise InputError(
                    f"{at}: has a {name!r} but the first record "
                    f"({place(self.path, self.first)}) has none: mixed shapes; give every pair "
                    "a negative or none"
                )

    def _missing_value(self, at: str, record: dict[str, Any], role: str, name: str) -> NoReturn:
        if name not in record:
            have = ", ".join(map(str, record)) or "none"
            raise InputError(
                f"{at}: no {name!r} (the {role}; fields: {have}); every record needs one"
            )
        raise InputError(f"{at}: {name!r} (the {role}) is empty; fill it in or drop the record")

    def finish(self) -> Examples:
        v = self.values
        scale = 1.0
        if self.objective == "pairs":
            names = ("anchor", "positive", "negative")
            columns = {name: v[name] for name in names if name in self.roles}
        elif self.objective == "scored":
            scale = self._score_scale(v["score"])
            columns = {
                "sentence1": v["anchor"],
                "sentence2": v["positive"],
                "score": [x / scale for x in v["score"]],
            }
        else:
            columns = {"text": v["text"], "label": v["label"]}
            self._check_labels(columns["label"])
        return Examples(self.objective, columns, str(self.path), scale)

    def _score_scale(self, scores: list[float]) -> float:
        """1 for scores in 0-1, 5 for 0-5; the first score outside both is an error."""
        name = self.roles["score"]
        for number, score in zip(self.numbers, scores, strict=True):
            if not 0 <= score <= 5:
                why = "is negative" if score < 0 else "is above 5"
                raise InputError(
                    f"{place(self.path, number)}: {name} {score:g} {why}; scores must be in "
                    "0-1 or 0-5"
                )
        if max(scores) == min(scores):
            raise InputError(
                f"{self.path}: every {name} is {scores[0]:g}; scored pairs need different "
                "scores to learn from"
            )
        return 5.0 if max(scores) > 1 else 1.0

    def _check_labels(self, labels: list[str]) -> None:
        counts = Counter(labels)
        name = self.roles["label"]
        if len(counts) < 2:
            raise InputError(
                f"{self.path}: every record has {name} {labels[0]!r}; training from labels "
                "needs at least two different labels"
            )
        for label, count in counts.items():
            if count == 1:
                line = self.numbers[labels.index(label)]
                raise InputError(
                    f"{place(self.path, line)}: {name} {label!r} has only this one example; "
                    "each label needs at least two (add more or drop it)"
                )


def _infer(
    path: str | Path, number: int, first: dict[str, Any], found: dict[str, str | None]
) -> Objective:
    if found["anchor"] and found["positive"]:
        return "scored" if found["score"] else "pairs"
    if found["text"] and found["label"]:
        return "labels"
    have = ", ".join(map(str, first)) or "none"
    raise InputError(
        f"{place(path, number)}: cannot tell what to train on from the fields ({have}); give "
        "anchor + positive [+ negative] (pairs), sentence1 + sentence2 + score (scored pairs) or "
        "text + label (labels), or name them with --anchor-field/--positive-field/"
        "--score-field/--text-field/--label-field and --objective"
    )


def _roles(objective: Objective, found: dict[str, str | None]) -> dict[str, Any]:
    wanted = {
        "pairs": ("anchor", "positive", "negative"),
        "scored": ("anchor", "positive", "score"),
        "labels": ("text", "label"),
    }[objective]
    roles = {role: found[role] for role in wanted}
    if objective == "pairs" and roles["negative"] is None:
        del roles["negative"]
    return roles


def _text(at: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"{at}: {name!r} is {type(value).__name__}, not text")
    if not value.strip():
        raise InputError(f"{at}: {name!r} is blank; fill it in or drop the record")
    return value


def _score(at: str, name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InputError(f"{at}: {name} {value!r} is not a number")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{at}: {name} {value!r} is not a number") from None
    if not math.isfinite(score):
        raise InputError(f"{at}: {name} {value!r} is not a finite number")
    return score


def _label(at: str, name: str, value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise InputError(f"{at}: {name} must be one value, not a {type(value).__name__}")
    label = str(value).strip()
    if not label:
        raise InputError(f"{at}: {name} is blank; fill it in or drop the record")
    return label


# ---- splitting ------------------------------------------------------------------------------
def split(
    examples: Examples, fraction: float, seed: int, max_held: int = MAX_HELD_OUT
) -> tuple[Examples, Examples]:
    """(train, held-out) parts, deterministic for a seed. Pairs are split by anchor (all pairs
    of one anchor land on one side, so none leaks); labels are split per label (each keeps at
    least two examples for training)."""
    if not 0 < fraction < 1:
        raise InputError(f"the held-out fraction must be between 0 and 1, not {fraction}")
    n = len(examples)
    if n < MIN_EXAMPLES:
        raise InputError(
            f"{examples.source}: {n} examples are too few to train on and hold some out; give "
            f"at least {MIN_EXAMPLES}, or a separate evaluation file"
        )
    rng = random.Random(seed)
    groups: dict[Any, list[int]] = defaultdict(list)
    if examples.objective == "pairs":
        for i, anchor in enumerate(examples.column("anchor")):
            groups[anchor].append(i)
    elif examples.objective == "labels":
        for i, label in enumerate(examples.column("label")):
            groups[label].append(i)
    else:
        groups = {i: [i] for i in range(n)}
    want = min(max(2, round(n * fraction)), max_held)
    held: list[int] = []
    if examples.objective == "labels":
        for rows in groups.values():
            rows = rows[:]
            rng.shuffle(rows)
            take = min(max(1, round(len(rows) * want / n)), len(rows) - 2)
            held += rows[: max(take, 0)]
    else:
        keys = list(groups)
        rng.shuffle(keys)
        for key in keys:
            if len(held) >= want:
                break
            held += groups[key]
    taken = set(held)
    train = [i for i in range(n) if i not in taken]
    if len(held) < 2 or len(train) < 2:
        raise InputError(
            f"{examples.source}: cannot hold out part of {n} examples and keep enough to train "
            "on; give a separate evaluation file"
        )
    return examples.take(train), examples.take(sorted(held))
