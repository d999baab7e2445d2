"""Validating a batch for add/upsert and turning texts into chunk spans + vectors.

Vectors of chunks whose text is already stored (same content hash, same collection model) are
reused from SQLite instead of being embedded again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedbox import catalog
from embedbox.errors import Conflict, InputError
from embedbox.store import db
from embedbox.store.chunking import ChunkOptions, Span, chunk_spans
from embedbox.store.vectors import decode_vectors

PRECISIONS = ("float32", "float16")  # how vectors are stored

if TYPE_CHECKING:
    from embedbox.collection import Collection


@dataclass
class Prepared:
    """One document ready to store: its hash, chunk spans, chunk hashes and chunk vectors."""

    hash: str
    spans: list[Span]
    chunk_hashes: list[str | None]
    vectors: np.ndarray


def content_hash(text: str, vector: np.ndarray | None = None) -> str:
    h = hashlib.sha256(text.encode("utf-8"))
    if vector is not None:
        h.update(np.ascontiguousarray(vector, np.float32).tobytes())
    return h.hexdigest()[:32]


def check_batch(
    name: str,
    texts: Sequence[str] | None,
    ids: Sequence[str] | None,
    metadatas: Sequence[dict[str, Any] | None] | None,
    vectors: np.ndarray | None,
    need_ids: bool,
) -> tuple[list[str], list[str], list[dict[str, Any] | None]]:
    """Validate lengths and types -> (texts, ids, metadatas); generates ids when allowed."""
    if isinstance(texts, str):
        raise InputError("texts must be a list of strings; wrap a single text in a list")
    if texts is None:
        if vectors is None:
            raise InputError("give texts, vectors, or both")
        texts = [""] * len(np.asarray(vectors))
    text_list = list(texts)
    n = len(text_list)
    for i, t in enumerate(text_list):
        if not isinstance(t, str):
            raise InputError(f"text {i} is {type(t).__name__}, not a string")
    if ids is None:
        if need_ids:
            raise InputError("upsert needs ids")
        id_list = [uuid.uuid4().hex for _ in range(n)]
    else:
        if isinstance(ids, str):
            raise InputError("ids must be a list of strings; wrap a single id in a list")
        id_list = list(ids)
        if len(id_list) != n:
            raise InputError(f"got {n} texts but {len(id_list)} ids")
        seen: set[str] = set()
        for i, doc_id in enumerate(id_list):
            if not isinstance(doc_id, str) or not doc_id:
                raise InputError(f"id {i} must be a non-empty string, got {doc_id!r}")
            if doc_id in seen:
                raise Conflict(f"id {doc_id!r} appears twice in this batch")
            seen.add(doc_id)
    if metadatas is None:
        metas: list[dict[str, Any] | None] = [None] * n
    else:
        metas = list(metadatas)
        if len(metas) != n:
            raise InputError(f"got {n} texts but {len(metas)} metadatas")
        for i, m in enumerate(metas):
            if m is None:
                continue
            if not isinstance(m, dict) or not all(isinstance(k, str) for k in m):
                raise InputError(f"metadata {i} ({id_list[i]!r}) must be a dict with string keys")
            try:
                json.dumps(m, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"metadata {i} ({id_list[i]!r}) is not JSON-serialisable: {exc}"
                ) from exc
    if vectors is not None and len(np.asarray(vectors)) != n:
        raise InputError(f"got {n} texts but {len(np.asarray(vectors))} vectors")
    return text_list, id_list, metas


def prepare(col: Collection, texts: list[str], vectors: np.ndarray | None) -> list[Prepared]:
    """Hash, chunk and embed (or take the given vectors of) each document."""
    if vectors is not None:
        mat = _given_vectors(col, vectors)
        return [
            Prepared(content_hash(t, v), [(0, len(t))], [None], v[None, :])
            for t, v in zip(texts, mat, strict=True)
        ]
    if not texts:
        return []
    for i, t in enumerate(texts):
        if not t.strip():
            raise InputError(f"text {i} is empty or whitespace only; remove it or pass vectors=")
    emb = col.embedder
    if col.chunking.enabled:
        special = len(emb.encoder.special_prefix) + len(emb.encoder.special_suffix)
        room = emb.max_tokens - special - (16 if emb.info.prompts else 4)
        window = min(col.chunking.tokens or room, room)
        spans = chunk_spans(
            texts, emb.encoder.tokenizer, window, min(col.chunking.overlap, window // 2 - 1)
        )
    else:
        spans = [[(0, len(t))] for t in texts]
    pieces = [t[a:b] for t, sp in zip(texts, spans, strict=True) for a, b in sp]
    hashes = [content_hash(p) for p in pieces]
    known = _cached(col, hashes)
    todo = sorted(
        {h: i for i, h in enumerate(hashes) if h not in known}.items(), key=lambda kv: kv[1]
    )
    if todo:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # chunks fit; whole-text mode truncates by design
            vecs = emb.embed([pieces[i] for _, i in todo], input_type="document", truncate=False)
        known.update({h: v for (h, _), v in zip(todo, vecs, strict=True)})
    _set_dim(col, int(next(iter(known.values())).shape[0]))
    out = []
    at = 0
    for t, sp in zip(texts, spans, strict=True):
        hs = hashes[at : at + len(sp)]
        mat = np.stack([known[h] for h in hs]).astype(np.float32)
        out.append(Prepared(content_hash(t), sp, list(hs), mat))
        at += len(sp)
    return out


def _given_vectors(col: Collection, vectors: np.ndarray) -> np.ndarray:
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim != 2:
        raise InputError(f"vectors must be a 2-D array (n, dim), got shape {mat.shape}")
    if col.dim is not None and mat.shape[1] != col.dim:
        raise InputError(
            f"vectors have {mat.shape[1]} dimensions; collection {col.name!r} has {col.dim}"
        )
    bad = np.nonzero(~np.isfinite(mat).all(axis=1))[0]
    if len(bad):
        raise InputError(f"vector {int(bad[0])} contains NaN or infinite values")
    if col.normalize:
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InputError(f"vector {int(np.nonzero(norms[:, 0] == 0)[0][0])} is all zeros")
        mat = mat / norms
    _set_dim(col, mat.shape[1])
    return mat


def _cached(col: Collection, hashes: list[str]) -> dict[str, np.ndarray]:
    """Stored vectors of chunks with these content hashes (the embedding cache)."""
    out: dict[str, np.ndarray] = {}
    unique = list(dict.fromkeys(hashes))
    dim = col.dim
    if dim is None:
        return out
    with col._lock:
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = col.conn.execute(
                f"SELECT hash, vector FROM chunks WHERE hash IN ({marks}) GROUP BY hash", part
            ).fetchall()
            if rows:
                mat = decode_vectors([r[1] for r in rows], dim, col.precision)
                out.update({r[0]: v for r, v in zip(rows, mat, strict=True)})
    return out


def _set_dim(col: Collection, dim: int) -> None:
    if col.dim is None:
        with col._lock, db.write(col.conn) as conn:
            db.set_meta(conn, "dim", dim)
        col.meta["dim"] = dim
    elif col.dim != dim:
        raise Conflict(f"collection {col.name!r} has dim {col.dim}, got vectors of {dim}")


def query_vector(col: Collection, query: str | np.ndarray) -> np.ndarray:
    """A text query embedded with the collection's model, or a checked vector; normalised."""
    if isinstance(query, str):
        if not query.strip():
            raise InputError("the query is empty")
        cache = col._query_cache
        if query in cache:
            return cache[query]
        vec = np.asarray(col.embedder.embed([query], input_type="query")[0], np.float32)
        if col.normalize:
            vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        if len(cache) >= 256:  # recent queries; repeated ones skip the model
            cache.pop(next(iter(cache)))
        cache[query] = vec
        return vec
    vec = np.asarray(query, dtype=np.float32).reshape(-1)
    dim = col.dim
    if dim is not None and vec.shape[0] != dim:
        raise InputError(
            f"query vector has {vec.shape[0]} dimensions; collection {col.name!r} has {dim}"
        )
    norm = math.sqrt(float(vec @ vec))  # NaN or inf for any non-finite value
    if not math.isfinite(norm):
        if not np.isfinite(vec).all():
            raise InputError("query vector contains NaN or infinite values")
        norm = float(np.linalg.norm(vec.astype(np.float64)))  # float32 overflowed
    return vec / max(norm, 1e-12) if col.normalize else vec


def pick_rows(vectors: np.ndarray | None, rows: list[int]) -> np.ndarray | None:
    return None if vectors is None else np.asarray(vectors)[rows]


def _show(ids: list[str]) -> str:
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return ", ".join(repr(i) for i in ids[:5]) + more


def conflict_message(name: str, ids: list[str]) -> str:
    return f"ids already in collection {name!r}: {_show(ids)}; use upsert to replace them"


def missing_message(name: str, ids: list[str]) -> str:
    return f"not in collection {name!r}: {_show(ids)}"


def canonical_model(model: str) -> str:
    """The catalog name; for a local model folder or file, its absolute path (so the collection
    still finds it from another directory); otherwise the name as given (a Hub id)."""
    spec = catalog.find(str(model))
    if spec:
        return spec.name
    path = Path(str(model)).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def same_model(a: str, b: str) -> bool:
    """Whether two model names or paths name the same model (as far as this machine can tell)."""
    return canonical_model(a) == canonical_model(b)


def new_meta(
    name: str,
    model: str | None,
    kind: str | None,
    dim: int | None,
    precision: str,
    normalize: bool,
    chunking: ChunkOptions | None,
    embedder: Any,
) -> dict[str, Any]:
    model = canonical_model(model or (embedder.name if embedder else catalog.DEFAULT_TEXT_MODEL))
    spec = catalog.find(model)
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    kind = kind or (spec.kind if spec else "text")
    dim = dim or (spec.dim if spec else None) or (embedder.dim if embedder else None)
    chunking = chunking or ChunkOptions()
    chunking.check()
    return {
        "name": name,
        "model": model,
        "kind": kind,
        "dim": dim,
        "precision": precision,
        "normalize": normalize,
        "chunking": asdict(chunking),
        "created": time.time(),
    }
