"""Search primitives: vector top-k (exact, or the index with a filter-aware plan), filters as
row positions, FTS5 queries, RRF fusion, and turning ranked chunk rows into `Hit`s.

The semantic path is latency-critical (one query is ~0.1 ms of HNSW work): everything per call
here is O(k) and at most one SQL query fetches the hit rows.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from embedbox.errors import InputError
from embedbox.inputs import check_unicode
from embedbox.store import rows as sq
from embedbox.store.ann import AnnIndex, AnnOptions
from embedbox.store.chunking import Span
from embedbox.store.filters import Filters
from embedbox.store.vectors import VectorTable, top_docs

RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1 us a hit
class Hit:
    """One search result. `id` is the document id. For a document split into chunks
    `parent_id` is that id too, `chunk` the window number and `span` its (start, end) in the
    text; `text` is the matching chunk."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]
    parent_id: str | None = None
    span: Span | None = None
    chunk: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = frozenset({"text", "metadata"})


def check_search(k: object, mode: object, include: object) -> frozenset[str]:
    """Validate `search` arguments: a positive int `k`, a known `mode` and `include` naming
    hit fields -> those fields."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    if mode not in ("semantic", "keyword", "hybrid"):
        raise InputError(f"mode must be semantic, keyword or hybrid, not {mode!r}")
    if isinstance(include, str) or not isinstance(include, (list, tuple, set, frozenset)):
        raise InputError(f"include must be a list of fields (text, metadata), got {include!r}")
    unknown = set(include) - FIELDS
    if unknown:
        raise InputError(f"include: unknown field {sorted(unknown)[0]!r}; use text, metadata")
    return frozenset(include)


def check_text_query(query: object, mode: str) -> str:
    """Keyword and hybrid search rank words: the query must be a text."""
    if not isinstance(query, str):
        raise InputError(f"{mode} search needs a text query, not a vector")
    check_unicode(query, "the query")
    return query


def vector_top(
    table: VectorTable,
    ann: AnnIndex | None,
    query: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    options: AnnOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-`k` documents by their best chunk -> (table row positions, exact scores).

    `allowed`: sorted row positions permitted by a filter (None: all rows). Without a filter the
    index answers (`ann` is None for collections within `AnnOptions.threshold`: exact). With
    one, the plan is the cheaper of two ways that both keep recall: exact scores of the allowed
    rows (FAISS's kernel over the mapped vectors, no copy), or the index restricted to the
    allowed rows with its effort raised for the filter's selectivity (`AnnIndex.effort_for`).
    If the index yields too few documents, the search falls back to exact. Documents split into
    chunks ask for `oversample` chunks per wanted document.
    """
    n = len(table)
    n_allowed = n if allowed is None else len(allowed)
    if n_allowed == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    per_doc = 1 if table.one_chunk_per_doc else options.oversample
    want = min(n_allowed, k * per_doc)
    if ann is not None and (
        allowed is None or not exact_is_cheaper(ann, n_allowed, n, want, options)
    ):
        got = ann.search(table, query, want, allowed)
        if got is not None:
            rows, scores = got
            if table.one_chunk_per_doc:
                if len(rows) >= min(k, n_allowed):
                    return rows, scores
            else:
                pos, best = top_docs(scores, table.docs[rows], k)
                if len(pos) >= min(k, n_allowed):
                    return rows[pos], best
    if table.one_chunk_per_doc:
        return table.top(query, k, allowed)
    if allowed is None:
        return top_docs(table.scores(query), table.docs, k)
    pos, best = top_docs(table.scores(query, allowed), table.docs[allowed], k)
    return allowed[pos], best


def exact_is_cheaper(ann: AnnIndex, n_allowed: int, n: int, want: int, options: AnnOptions) -> bool:
    """For a filter: whether scoring the allowed rows exactly costs less than an index search at
    the effort the filter's selectivity needs (costs in vectors scored; see `AnnIndex.cost`)."""
    if n_allowed <= options.threshold:
        return True
    return n_allowed <= ann.cost(n_allowed / max(n, 1), want)


class FilterCache:
    """Row positions allowed by a metadata (and document-text) filter, cached per generation."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._cache: dict[tuple[int, str], np.ndarray] = {}

    def allowed(
        self, conn: sqlite3.Connection, table: VectorTable, filters: Filters
    ) -> np.ndarray | None:
        if not filters:
            return None
        shape = [filters.where, filters.document]
        key = (table.generation, json.dumps(shape, sort_keys=True, default=str))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        sql, params = filters.sql()  # raises on a bad filter, so those are never cached
        # Only the documents table is read: the chunk rows are in the vector table.
        docs = np.fromiter(sq.filter_docs(conn, sql, params), np.int64)
        pos = np.flatnonzero(np.isin(table.docs, docs))
        if len(self._cache) >= self.size:
            self._cache.clear()
        self._cache[key] = pos
        return pos


def vector_hits(
    conn: sqlite3.Connection,
    table: VectorTable,
    rows: np.ndarray,
    scores: np.ndarray,
    include: frozenset[str],
) -> list[Hit]:
    """Hits for ranked matrix rows. Ids and chunk spans come from the table; text and metadata,
    when included, from one SQL query (documents deleted since the table was read are left
    out). Fields not included are empty."""
    chunks = table.chunks[rows].tolist()
    ids = table.ids.many(rows)
    if not include:
        return [
            _hit(doc_id, score, "", "{}", *chunk)
            for doc_id, score, chunk in zip(ids, scores.tolist(), chunks, strict=True)
        ]
    docs = table.docs[rows].tolist()
    found = sq.doc_fields(conn, docs, "text" in include, "metadata" in include)
    hits = []
    for doc_id, doc, score, chunk in zip(ids, docs, scores.tolist(), chunks, strict=True):
        fields = found.get(doc)
        if fields is not None:  # else deleted since the table was read
            hits.append(_hit(doc_id, score, *fields, *chunk))
    return hits


def make_hits(conn: sqlite3.Connection, rids: list[int], scores: list[float]) -> list[Hit]:
    """Hits for ranked chunk row ids (one SQL query); rows deleted meanwhile are left out."""
    found = sq.hit_rows(conn, rids)
    hits = []
    for rid, score in zip(rids, scores, strict=True):
        row = found.get(rid)
        if row is None:  # deleted since the matrix was read
            continue
        _, idx, start, end, doc_id, text, meta, n_chunks = row
        hits.append(_hit(doc_id, score, text, meta, idx, start, end, n_chunks))
    return hits


def _hit(
    doc_id: str, score: float, text: str, meta: str, idx: int, start: int, end: int, chunks: int
) -> Hit:
    """A hit from its row fields: a chunked document's hit carries its window of the text."""
    metadata = sq.load_metadata(meta)
    if chunks > 1:
        return Hit(doc_id, score, text[start:end], metadata, doc_id, (start, end), idx)
    return Hit(doc_id, score, text, metadata, None, (start, end), idx)


def only(hits: list[Hit], include: frozenset[str]) -> list[Hit]:
    """The hits with the fields not in `include` emptied."""
    if include == FIELDS:
        return hits
    text, meta = "text" in include, "metadata" in include
    return [
        replace(h, text=h.text if text else "", metadata=h.metadata if meta else {}) for h in hits
    ]


def fuse(sem: list[Hit], kw: list[Hit], weights: Sequence[float], k: int) -> list[Hit]:
    """Hybrid ranking: weighted RRF of a semantic and a keyword ranking, RRF scores on the hits."""
    by_id = {h.id: h for h in kw} | {h.id: h for h in sem}
    fused = rrf([[h.id for h in sem], [h.id for h in kw]], weights)[:k]
    out = []
    for key, score in fused:
        h = by_id[key]
        out.append(Hit(h.id, score, h.text, h.metadata, h.parent_id, h.span, h.chunk))
    return out


def fts_query(text: str) -> str:
    """A safe FTS5 MATCH expression: every word of `text` quoted, any may match (BM25 ranks)."""
    words = _WORD.findall(text)
    if not words:
        raise InputError(f"keyword search needs at least one word, got {text!r}")
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float]) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion: score(d) = sum_i w_i / (60 + rank_i(d)), rank from 1."""
    if len(rankings) != len(weights):
        raise InputError("one weight per ranking is needed")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + weight / (RRF_K + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])
