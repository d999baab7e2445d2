"""Evaluate search on an existing collection: queries + qrels, per mode, hybrid weights and filter.

Only the public `Collection` API is used (`search(..., include=())`, `get`). Each query's hits,
in the order the collection returns them, are scored with `metrics.ranking_metrics`; a query
the mode cannot answer (keyword search of a query without a word) ranks nothing and scores 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from embedbox.errors import InputError, NotFound
from embedbox.evaluation import metrics
from embedbox.types import Mode

if TYPE_CHECKING:
    from rich.table import Table

    from embedbox.store.collection import Collection

MODES = ("semantic", "keyword", "hybrid")


@dataclass(frozen=True)
class SearchSetting:
    mode: str
    weights: tuple[float, float] | None = None  # hybrid only: (semantic, keyword)
    where: str | None = None  # the filter as JSON text (hashable, printable)

    def label(self) -> str:
        out = self.mode
        if self.weights is not None:
            out += f" w={self.weights[0]:g},{self.weights[1]:g}"
        return out + (f" where {self.where}" if self.where else "")


@dataclass(frozen=True)
class SearchResult:
    setting: SearchSetting
    metrics: dict[str, float]
    queries: int
    seconds: float

    @property
    def queries_per_s(self) -> float:
        return self.queries / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.setting.mode,
            "weights": list(self.setting.weights) if self.setting.weights else None,
            "where": json.loads(self.setting.where) if self.setting.where else None,
            **{k: round(v, 6) for k, v in self.metrics.items()},
            "queries": self.queries,
            "queries_per_s": round(self.queries_per_s, 2),
        }


@dataclass
class CollectionReport:
    collection: str
    model: str
    documents: int
    results: list[SearchResult] = field(default_factory=list)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"collection": self.collection, **r.to_dict()} for r in self.results]

    def table(self) -> Table:
        from rich.table import Table

        t = Table(
            title=f"{self.collection}: {self.documents} documents, {self.model}",
            caption="metrics over the queries with a relevant document",
        )
        names = ("ndcg@10", "map@10", "mrr@10", "recall@10", "recall@100")
        for col in ("mode", "weights", "where", *names, "queries/s"):
            t.add_column(col, justify="left" if col in ("mode", "weights", "where") else "right")
        for r in self.results:
            w = r.setting.weights
            t.add_row(
                r.setting.mode,
                "" if w is None else f"{w[0]:g}, {w[1]:g}",
                r.setting.where or "",
                *(f"{r.metrics[n]:.4f}" if n in r.metrics else "" for n in names),
                f"{r.queries_per_s:.1f}",
            )
        return t


def missing_ids(col: Collection, ids: Sequence[str], batch: int = 500) -> list[str]:
    """Those of `ids` that are not documents of `col`."""
    missing: list[str] = []
    for start in range(0, len(ids), batch):
        chunk = list(ids[start : start + batch])
        try:
            col.get(chunk)
        except NotFound:
            for doc in chunk:
                try:
                    col.get([doc])
                except NotFound:
                    missing.append(doc)
    return missing


def check_qrels_documents(path: str | Path, col: Collection) -> None:
    """An `InputError` naming the qrels line of the first document `col` does not hold."""
    from embedbox.evaluation.data import qrels_lines

    lines = qrels_lines(path)
    gone = missing_ids(col, list(lines))
    if gone:
        first = min(gone, key=lines.__getitem__)
        raise InputError(
            f"{path}:{lines[first]}: unknown document id {first!r} (not in collection {col.name!r})"
        )


def settings_grid(
    modes: Sequence[str],
    weights: Sequence[tuple[float, float]] = ((1.0, 1.0),),
    wheres: Sequence[Mapping[str, Any] | None] = (None,),
) -> list[SearchSetting]:
    """Every mode x filter; hybrid once per weight pair."""
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise InputError(f"unknown mode {bad[0] if bad else ''!r}; choose from {', '.join(MODES)}")
    for w in weights:
        if len(w) != 2 or min(w) < 0 or max(w) <= 0:
            raise InputError(f"hybrid weights are two non-negative numbers, not all 0: {w}")
    out: list[SearchSetting] = []
    for where in wheres:
        text = None if where is None else json.dumps(where, sort_keys=True)
        for mode in dict.fromkeys(modes):
            pairs = [tuple(w) for w in weights] if mode == "hybrid" else [None]
            out.extend(SearchSetting(mode, p, text) for p in pairs)  # type: ignore[arg-type]
    return out


def evaluate_collection(
    collection: Collection | str | Path,
    queries: Mapping[str, str],
    qrels: metrics.Qrels,
    *,
    modes: Sequence[str] = MODES,
    weights: Sequence[tuple[float, float]] = ((1.0, 1.0),),
    wheres: Sequence[Mapping[str, Any] | None] = (None,),
    k: int = 100,
    data_dir: str | Path | None = None,
) -> CollectionReport:
    """Run every query under each setting and score the hits against `qrels`.

    Queries without a relevant judgement are skipped (as trec_eval does); qrels naming ids that
    are not in `queries` or not in the collection are an `InputError`.
    """
    from embedbox.store.collection import Collection

    col = (
        collection
        if isinstance(collection, Collection)
        else Collection.open(collection, data_dir=data_dir)
    )
    unknown_q = sorted(set(qrels) - set(queries))
    if unknown_q:
        raise InputError(f"qrels name unknown query id {unknown_q[0]!r} (not among the queries)")
    judged = {q: j for q, j in qrels.items() if any(g >= 1 for g in j.values())}
    if not judged:
        raise InputError("no query has a relevant document (score >= 1)")
    docs = sorted({d for j in judged.values() for d in j})
    gone = missing_ids(col, docs)
    if gone:
        raise InputError(f"qrels name document {gone[0]!r}, which is not in {col.name!r}")
    grid = settings_grid(modes, weights, wheres)
    report = CollectionReport(col.name, col.model, col.count())
    first = next(iter(judged))
    for setting in grid:
        where = None if setting.where is None else json.loads(setting.where)
        col.search(queries[first], k=1, where=where, include=())  # a bad filter fails here
        rankings: dict[str, list[str]] = {}
        start = time.perf_counter()
        for qid in judged:
            try:
                hits = col.search(
                    queries[qid],
                    k=k,
                    where=where,
                    mode=cast(Mode, setting.mode),
                    weights=setting.weights or (1.0, 1.0),
                    include=(),
                )
            except InputError:
                if setting.mode == "semantic":
                    raise
                hits = []  # keyword search of a query with no word in it finds nothing
            rankings[qid] = [h.id for h in hits]
        seconds = time.perf_counter() - start
        scores = metrics.ranking_metrics(judged, rankings, metrics.DEFAULT_KS)
        report.results.append(SearchResult(setting, scores, len(judged), seconds))
    return report
