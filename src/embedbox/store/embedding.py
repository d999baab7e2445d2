"""Turning documents into chunk spans and vectors, and checking vectors handed in.

Nothing here knows the `Collection`: callers pass the embedder, the chunking options and a
lookup of vectors already stored (the embedding cache: a chunk whose text is stored already is
not embedded again).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from embedbox.errors import InputError
from embedbox.store.chunking import ChunkOptions, Span, chunk_spans
from embedbox.store.validate import content_hash

if TYPE_CHECKING:
    from embedbox.embed import Embedder  # the store itself never imports torch

# Re-tokenising a chunk on its own can take a few more tokens than its slice of the whole text
# (a word piece at its start becomes a word start): leave room for that.
CHUNK_SLACK = 4

Lookup = Callable[[list[str]], dict[str, np.ndarray]]
"""Content hashes -> stored vectors of those chunks (missing hashes left out)."""


@dataclass
class Prepared:
    """One document ready to store: its hash, chunk spans, chunk hashes and chunk vectors."""

    hash: str
    spans: list[Span]
    chunk_hashes: list[str | None]
    vectors: np.ndarray


def from_vectors(texts: list[str], mat: np.ndarray) -> list[Prepared]:
    """Documents with given (already checked) vectors: one chunk each."""
    return [
        Prepared(content_hash(t, v), [(0, len(t))], [None], v[None, :])
        for t, v in zip(texts, mat, strict=True)
    ]


def embed_documents(
    texts: list[str], embedder: Embedder, chunking: ChunkOptions, lookup: Lookup
) -> list[Prepared]:
    """Chunk and embed each document; chunks found by `lookup` are not embedded again."""
    for i, t in enumerate(texts):
        if not t.strip():
            raise InputError(f"text {i} is empty or whitespace only; remove it or pass vectors=")
    if chunking.enabled:
        room = embedder.text_room(input_type="document") - CHUNK_SLACK
        window = min(chunking.tokens or room, room)
        spans = chunk_spans(
            texts, embedder.encoder.tokenizer, window, min(chunking.overlap, window // 2 - 1)
        )
    else:
        spans = [[(0, len(t))] for t in texts]
    pieces = [t[a:b] for t, sp in zip(texts, spans, strict=True) for a, b in sp]
    hashes = [content_hash(p) for p in pieces]
    known = lookup(list(dict.fromkeys(hashes)))
    todo = sorted(
        {h: i for i, h in enumerate(hashes) if h not in known}.items(), key=lambda kv: kv[1]
    )
    if todo:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # chunks fit; whole-text mode truncates by design
            vecs = embedder.embed(
                [pieces[i] for _, i in todo], input_type="document", truncate=False
            )
        known.update({h: v for (h, _), v in zip(todo, vecs, strict=True)})
    out = []
    at = 0
    for t, sp in zip(texts, spans, strict=True):
        hs = hashes[at : at + len(sp)]
        mat = np.stack([known[h] for h in hs]).astype(np.float32)
        out.append(Prepared(content_hash(t), sp, list(hs), mat))
        at += len(sp)
    return out


def check_vectors(vectors: np.ndarray, dim: int | None, normalize: bool, name: str) -> np.ndarray:
    """Vectors handed to add / upsert -> float32 (n, dim), normalised when the collection is."""
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim != 2:
        raise InputError(f"vectors must be a 2-D array (n, dim), got shape {mat.shape}")
    if dim is not None and mat.shape[1] != dim:
        raise InputError(f"vectors have {mat.shape[1]} dimensions; collection {name!r} has {dim}")
    bad = np.nonzero(~np.isfinite(mat).all(axis=1))[0]
    if len(bad):
        raise InputError(f"vector {int(bad[0])} contains NaN or infinite values")
    if normalize:
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InputError(f"vector {int(np.nonzero(norms[:, 0] == 0)[0][0])} is all zeros")
        mat = mat / norms
    return mat


def check_query(query: object, dim: int | None, normalize: bool, name: str) -> np.ndarray:
    """A query vector -> float32 (dim,), normalised when the collection is."""
    if query is None or isinstance(query, bool | int | float | bytes | dict):
        raise InputError(
            f"a query must be a text or a vector (a list or array of numbers), got "
            f"{type(query).__name__}"
        )
    try:
        arr = np.asarray(query, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the query vector is not a list of numbers: {exc}") from exc
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise InputError(
            f"a query vector must be 1-D, got shape {arr.shape}; for several queries pass a "
            "list of them"
        )
    if dim is not None and arr.shape[0] != dim:
        raise InputError(
            f"query vector has {arr.shape[0]} dimensions; collection {name!r} has {dim}"
        )
    norm = math.sqrt(float(arr @ arr))  # NaN or inf for any non-finite value
    if not math.isfinite(norm):
        if not np.isfinite(arr).all():
            raise InputError("query vector contains NaN or infinite values")
        norm = float(np.linalg.norm(arr.astype(np.float64)))  # float32 overflowed
    return arr / max(norm, 1e-12) if normalize else arr
