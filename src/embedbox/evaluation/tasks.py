"""Evaluation tasks. Each takes an `Encode` function (texts -> unit vectors in the setting under
test) and returns its metrics under their usual names.

- `STSTask`: scored pairs -> Spearman and Pearson of cosine against gold.
- `RetrievalTask`: corpus, queries, qrels -> nDCG / MAP / MRR / recall at 1, 10, 100 over an
  exact cosine ranking of the whole corpus (top 100 kept, as a run file would).
- `ClassificationTask`: logistic regression on the vectors -> accuracy and macro-F1, on a given
  train / test split or stratified k-fold.
- `ClusteringTask`: k-means with k = the number of labels -> V-measure and ARI.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from embedbox.errors import InputError
from embedbox.evaluation import metrics
from embedbox.evaluation.data import Labelled, Pair, RetrievalData, check_labels

InputType = Literal["query", "document"]
Encode = Callable[[Sequence[str], InputType | None], np.ndarray]


class Task(ABC):
    """One evaluation: a name, where its data came from, and how to score a set of vectors."""

    kind: ClassVar[str]
    main: ClassVar[tuple[str, ...]]  # the metrics a comparison table shows

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source

    @abstractmethod
    def run(self, encode: Encode) -> dict[str, float]:
        """Embed this task's texts with `encode` and score them."""

    @abstractmethod
    def size(self) -> dict[str, int]:
        """How much data the task holds (pairs, queries, documents, texts...)."""

    def describe(self) -> dict[str, Any]:
        return {"task": self.name, "kind": self.kind, "source": self.source, **self.size()}


def _unique(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct texts (first-seen order) and each input's index into them."""
    index: dict[str, int] = {}
    positions = np.array([index.setdefault(t, len(index)) for t in texts], dtype=np.int64)
    return list(index), positions


class STSTask(Task):
    kind = "sts"
    main = ("spearman",)

    def __init__(self, name: str, pairs: Sequence[Pair], source: str = "") -> None:
        super().__init__(name, source)
        if len(pairs) < 2 or len({p.score for p in pairs}) < 2:
            raise InputError(f"{name}: needs at least two pairs with different scores")
        self.pairs = list(pairs)

    def size(self) -> dict[str, int]:
        return {"pairs": len(self.pairs)}

    def run(self, encode: Encode) -> dict[str, float]:
        texts, pos = _unique([p.a for p in self.pairs] + [p.b for p in self.pairs])
        vectors = encode(texts, None)
        n = len(self.pairs)
        cos = (vectors[pos[:n]] * vectors[pos[n:]]).sum(1)
        gold = [p.score for p in self.pairs]
        return {"spearman": metrics.spearman(cos, gold), "pearson": metrics.pearson(cos, gold)}


class RetrievalTask(Task):
    """`ignore_identical_ids`: a query never retrieves the document with its own id (for sets
    whose queries are also corpus documents, as MTEB does for Quora-style duplicates)."""

    kind = "retrieval"
    main = ("ndcg@10", "recall@10")
    depth = 100

    def __init__(
        self,
        name: str,
        data: RetrievalData,
        source: str = "",
        ignore_identical_ids: bool = False,
        ks: Sequence[int] = metrics.DEFAULT_KS,
    ) -> None:
        super().__init__(name, source)
        if not data.qrels:
            raise InputError(f"{name}: no query has a relevant document")
        self.data = data
        self.ignore_identical_ids = ignore_identical_ids
        self.ks = tuple(ks)

    def size(self) -> dict[str, int]:
        return {"queries": len(self.data.queries), "documents": len(self.data.corpus)}

    def run(self, encode: Encode) -> dict[str, float]:
        query_ids, doc_ids = list(self.data.queries), list(self.data.corpus)
        q = encode([self.data.queries[i] for i in query_ids], "query")
        d = encode([self.data.corpus[i] for i in doc_ids], "document")
        where = {doc: n for n, doc in enumerate(doc_ids)}
        depth = min(self.depth, len(doc_ids))
        run: dict[str, dict[str, float]] = {}
        for start in range(0, len(query_ids), 256):
            scores = q[start : start + 256] @ d.T
            for row, qid in enumerate(query_ids[start : start + 256]):
                if self.ignore_identical_ids and qid in where:
                    scores[row, where[qid]] = -np.inf
                top = np.argpartition(-scores[row], depth - 1)[:depth]
                run[qid] = {
                    doc_ids[j]: float(scores[row, j]) for j in top if np.isfinite(scores[row, j])
                }
        return metrics.run_metrics(self.data.qrels, run, self.ks)


class ClassificationTask(Task):
    """Logistic regression (scikit-learn, C=1) on the vectors. `test=None`: stratified k-fold
    over `train` (`folds` folds, shuffled with `seed`); metrics are the mean over folds."""

    kind = "classification"
    main = ("accuracy",)

    def __init__(
        self,
        name: str,
        train: Sequence[Labelled],
        test: Sequence[Labelled] | None = None,
        folds: int = 5,
        seed: int = 0,
        source: str = "",
    ) -> None:
        super().__init__(name, source)
        self.train, self.test = list(train), None if test is None else list(test)
        self.folds, self.seed = folds, seed
        check_labels(self.train, f"{name} (training texts)")
        if self.test is not None:
            if not self.test:
                raise InputError(f"{name}: the test split is empty")
            unseen = sorted({r.label for r in self.test} - {r.label for r in self.train})
            if unseen:
                raise InputError(
                    f"{name}: test label(s) {', '.join(map(repr, unseen))} never occur in training"
                )
        else:
            if folds < 2:
                raise InputError(f"{name}: k-fold needs at least 2 folds, got {folds}")
            label, count = min(Counter(r.label for r in self.train).items(), key=lambda x: x[1])
            if count < folds:
                raise InputError(
                    f"{name}: label {label!r} has {count} texts, fewer than the {folds} folds; "
                    "use fewer folds or give a test file"
                )

    def size(self) -> dict[str, int]:
        out = {"train": len(self.train), "classes": len({r.label for r in self.train})}
        if self.test is not None:
            out["test"] = len(self.test)
        else:
            out["folds"] = self.folds
        return out

    def run(self, encode: Encode) -> dict[str, float]:
        from embedbox.tasks.classify import evaluate, fit_head

        if self.test is not None:
            x = encode([r.text for r in self.train + self.test], None)
            n = len(self.train)
            head = fit_head(x[:n], [r.label for r in self.train], "logreg", seed=self.seed)
            report = evaluate([r.label for r in self.test], [p.label for p in head.predict(x[n:])])
            return {"accuracy": report.accuracy, "macro_f1": report.macro_f1}
        from sklearn.model_selection import StratifiedKFold

        x = encode([r.text for r in self.train], None)
        y = np.array([r.label for r in self.train])
        scores: list[tuple[float, float]] = []
        split = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
        for tr, te in split.split(x, y):
            head = fit_head(x[tr], list(y[tr]), "logreg", seed=self.seed)
            report = evaluate(list(y[te]), [p.label for p in head.predict(x[te])])
            scores.append((report.accuracy, report.macro_f1))
        acc, f1 = np.mean(scores, axis=0)
        return {"accuracy": float(acc), "macro_f1": float(f1)}


class ClusteringTask(Task):
    """k-means (scikit-learn, 4 initialisations, `seed`) with k = the number of labels."""

    kind = "clustering"
    main = ("v_measure",)

    def __init__(
        self, name: str, items: Sequence[Labelled], seed: int = 0, source: str = ""
    ) -> None:
        super().__init__(name, source)
        self.items, self.seed = list(items), seed
        check_labels(self.items, name)

    def size(self) -> dict[str, int]:
        return {"texts": len(self.items), "classes": len({r.label for r in self.items})}

    def run(self, encode: Encode) -> dict[str, float]:
        from embedbox.tasks.cluster import ClusterOptions, cluster_labels

        x = encode([r.text for r in self.items], None)
        k = len({r.label for r in self.items})
        predicted = cluster_labels(x, ClusterOptions(method="kmeans", k=k, seed=self.seed))
        truth = [r.label for r in self.items]
        return {
            "v_measure": metrics.v_measure(truth, predicted),
            "ari": metrics.adjusted_rand(truth, predicted),
        }
