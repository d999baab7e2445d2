"""Classify with embeddings: zero-shot against label descriptions, or trained heads
(logistic regression / kNN from scikit-learn) saved as JSON + safetensors, never pickle.

Arrays first: `LinearHead` / `KnnHead` work on vectors; `TextClassifier` adds the embedder.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedbox.errors import EmbedboxWarning, InputError, NotFound, require
from embedbox.similarity import as_matrix, normalize

if TYPE_CHECKING:
    from embedbox.embed import Embedder

__all__ = [
    "ClassStats",
    "Head",
    "Prediction",
    "Report",
    "TextClassifier",
    "ZeroShotClassifier",
    "evaluate",
    "fit_head",
    "train_test_split",
]

Method = Literal["logreg", "knn"]
FORMAT = "embedbox-classifier"
FORMAT_VERSION = 1
DEFAULT_TEMPLATE = "{label}"


@dataclass(frozen=True)
class Prediction:
    """Best label, its score, and every label with its score, best first."""

    label: str
    score: float
    ranking: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(self.score, 6),
            "ranking": [{"label": lab, "score": round(s, 6)} for lab, s in self.ranking],
        }


def _predictions(labels: Sequence[str], scores: np.ndarray) -> list[Prediction]:
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        ranking = [(labels[i], float(row[i])) for i in order]
        out.append(Prediction(ranking[0][0], ranking[0][1], ranking))
    return out


# ---- zero-shot -----------------------------------------------------------------------------
class ZeroShotClassifier:
    """Compare texts with embedded label descriptions.

    `labels` is a list of names or a mapping name -> description (what gets embedded);
    `template` formats each one, e.g. "A movie review that is {label}.".
    Scores are softmax probabilities over cosine similarities / `temperature`.
    """

    def __init__(
        self,
        embedder: Embedder,
        labels: Sequence[str] | Mapping[str, str],
        template: str = DEFAULT_TEMPLATE,
        temperature: float = 0.05,
    ) -> None:
        if isinstance(labels, str):
            raise InputError("labels must be a list of label names, not one string")
        described = dict(labels) if isinstance(labels, Mapping) else {x: x for x in labels}
        if len(described) < 2:
            raise InputError("zero-shot classification needs at least two labels")
        if "{label}" not in template:
            raise InputError("template must contain '{label}', e.g. 'This text is about {label}.'")
        if temperature <= 0:
            raise InputError("temperature must be positive")
        self.labels = list(described)
        self.prompts = [template.format(label=d) for d in described.values()]
        self.embedder = embedder
        self.temperature = temperature
        self.label_vectors = normalize(embedder.embed(self.prompts, input_type="query"))

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(n, labels) softmax probabilities for already-embedded texts."""
        sims = normalize(as_matrix(vectors)) @ self.label_vectors.T
        return _softmax(sims / self.temperature)

    def predict_vectors(self, vectors: np.ndarray) -> list[Prediction]:
        return _predictions(self.labels, self.scores(vectors))

    def predict(self, texts: Sequence[str], **embed_kwargs: Any) -> list[Prediction]:
        vectors = self.embedder.embed(texts, input_type="document", **embed_kwargs)
        return self.predict_vectors(vectors)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    out: np.ndarray = (z / z.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


# ---- trained heads on vectors --------------------------------------------------------------
@dataclass
class Head:
    """A trained classifier on vectors; `arrays` holds everything needed to predict."""

    method: Method
    classes: list[str]
    arrays: dict[str, np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        x = as_matrix(vectors)
        if x.shape[1] != self.dim:
            raise InputError(
                f"vectors have {x.shape[1]} dimensions; this classifier expects {self.dim}"
            )
        if self.method == "logreg":
            logits = x @ self.arrays["coef"].T + self.arrays["intercept"]
            if len(self.classes) == 2:  # scikit-learn's binary model: one logit for class 1
                p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
                return np.stack([1.0 - p1, p1], axis=1).astype(np.float32)
            return _softmax(logits)
        return self._knn_proba(x)

    def _knn_proba(self, x: np.ndarray) -> np.ndarray:
        from embedbox.similarity import chunked_top_k

        train, y = self.arrays["vectors"], self.arrays["labels"]
        k = int(self.params.get("k", 10))
        idx, sims = chunked_top_k(normalize(x), train, k)
        proba = np.zeros((len(x), len(self.classes)), dtype=np.float64)
        weights = np.maximum(sims, 0.0) + 1e-6 if self.params.get("weighted", True) else None
        for c in range(len(self.classes)):
            hit = y[idx] == c
            proba[:, c] = (hit * weights).sum(1) if weights is not None else hit.sum(1)
        out: np.ndarray = (proba / proba.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    @property
    def dim(self) -> int:
        key = "coef" if self.method == "logreg" else "vectors"
        return int(self.arrays[key].shape[1])

    def predict(self, vectors: np.ndarray) -> list[Prediction]:
        return _predictions(self.classes, self.predict_proba(vectors))


def fit_head(
    vectors: np.ndarray,
    labels: Sequence[str],
    method: Method = "logreg",
    *,
    c: float = 1.0,
    k: int = 10,
    seed: int = 0,
) -> Head:
    """Train logistic regression or kNN (cosine) on vectors with string labels."""
    x = normalize(as_matrix(vectors))
    y_str = [str(v) for v in labels]
    if len(y_str) != len(x):
        raise InputError(f"{len(x)} vectors but {len(y_str)} labels")
    classes = sorted(set(y_str))
    if len(classes) < 2:
        raise InputError(f"training needs at least two classes; found only {classes}")
    index = {c_: i for i, c_ in enumerate(classes)}
    y = np.array([index[v] for v in y_str], dtype=np.int64)
    if method == "logreg":
        require("sklearn", "tasks")
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
        arrays = {
            "coef": model.coef_.astype(np.float32),
            "intercept": model.intercept_.astype(np.float32),
        }
        return Head("logreg", classes, arrays, {"C": c})
    if method == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        if k < 1:
            raise InputError("k must be at least 1")
        KNeighborsClassifier(n_neighbors=min(k, len(x)), metric="cosine").fit(x, y)  # validates
        return Head("knn", classes, {"vectors": x, "labels": y}, {"k": min(k, len(x))})
    raise InputError(f"unknown method {method!r}; use 'logreg' or 'knn'")


# ---- text classifier: head + embedder, saved as JSON + safetensors -------------------------
class TextClassifier:
    """A trained `Head` plus the name of the model whose vectors it was trained on."""

    def __init__(self, head: Head, model: str, embedder: Embedder | None = None) -> None:
        self.head = head
        self.model = model
        self._embedder = embedder

    @classmethod
    def train(
        cls,
        embedder: Embedder,
        texts: Sequence[str],
        labels: Sequence[str],
        method: Method = "logreg",
        progress: Any = None,
        **params: Any,
    ) -> TextClassifier:
        vectors = embedder.embed(texts, progress=progress)
        return cls(fit_head(vectors, labels, method, **params), embedder.name, embedder)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from embedbox.embed import Embedder

            self._embedder = Embedder(self.model)
        return self._embedder

    @property
    def classes(self) -> list[str]:
        return self.head.classes

    def predict(self, texts: Sequence[str], progress: Any = None) -> list[Prediction]:
        return self.head.predict(self.embedder.embed(texts, progress=progress))

    def save(self, directory: str | Path) -> Path:
        """Write `classifier.json` and `weights.safetensors` into `directory`."""
        from safetensors.numpy import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "method": self.head.method,
            "classes": self.head.classes,
            "params": self.head.params,
            "model": self.model,
            "dim": self.head.dim,
        }
        arrays = {k: np.ascontiguousarray(v) for k, v in self.head.arrays.items()}
        save_file(arrays, str(out / "weights.safetensors"))
        (out / "classifier.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, directory: str | Path, embedder: Embedder | None = None) -> TextClassifier:
        from safetensors.numpy import load_file

        base = Path(directory)
        meta_path, weights = base / "classifier.json", base / "weights.safetensors"
        if not meta_path.is_file() or not weights.is_file():
            raise NotFound(
                f"{base} is not a classifier folder (needs classifier.json and "
                "weights.safetensors); create one with `embedbox classify train`"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{meta_path}: invalid JSON ({exc.msg})") from exc
        if meta.get("format") != FORMAT or meta.get("method") not in ("logreg", "knn"):
            raise InputError(f"{meta_path} is not an embedbox classifier")
        head = Head(meta["method"], list(meta["classes"]), load_file(str(weights)), meta["params"])
        if embedder is not None and embedder.name != meta["model"]:
            raise InputError(
                f"classifier was trained on {meta['model']!r} vectors, not {embedder.name!r}"
            )
        return cls(head, meta["model"], embedder)


# ---- evaluation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassStats:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Report:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix
    (rows: true label, columns: predicted, in `labels` order)."""

    accuracy: float
    macro_f1: float
    per_class: list[ClassStats]
    labels: list[str]
    confusion: list[list[int]]
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 6),
            "macro_f1": round(self.macro_f1, 6),
            "count": self.count,
            "labels": self.labels,
            "per_class": [
                {
                    "label": s.label,
                    "precision": round(s.precision, 6),
                    "recall": round(s.recall, 6),
                    "f1": round(s.f1, 6),
                    "support": s.support,
                }
                for s in self.per_class
            ],
            "confusion": self.confusion,
        }


def evaluate(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str] | None = None,
    source: str = "the data",
) -> Report:
    """Classification report from true and predicted labels.

    `classes`: the labels the classifier knows; true labels outside them (which it can never
    predict) are named in one `EmbedboxWarning` about `source`."""
    require("sklearn", "tasks")
    if classes is not None:
        unknown = sorted(set(y_true) - set(classes))
        if unknown:
            shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
            warnings.warn(
                f"{source}: {len(unknown)} label(s) the classifier was not trained on: {shown} "
                f"(it knows {', '.join(map(repr, classes))}); their examples all count as wrong",
                EmbedboxWarning,
                stacklevel=2,
            )
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(y_true) != len(y_pred):
        raise InputError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not y_true:
        raise InputError("nothing to evaluate: no labelled examples")
    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = [
        ClassStats(lab, float(p[i]), float(r[i]), float(f[i]), int(s[i]))
        for i, lab in enumerate(labels)
    ]
    macro = float(np.mean([c.f1 for c in per_class]))  # scikit-learn's average="macro"
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return Report(
        float(accuracy_score(y_true, y_pred)), macro, per_class, labels, cm.tolist(), len(y_true)
    )


def train_test_split(
    n: int, test_fraction: float = 0.25, seed: int = 0, labels: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (train, test); stratified by `labels` when given."""
    if not 0 < test_fraction < 1:
        raise InputError("test fraction must be between 0 and 1")
    require("sklearn", "tasks")
    from sklearn.model_selection import train_test_split as split

    idx = np.arange(n)
    tr, te = split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.asarray(tr), np.asarray(te)
