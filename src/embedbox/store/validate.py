"""Checking a batch for add / upsert before anything is embedded or stored."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from embedbox.errors import Conflict, InputError
from embedbox.inputs import check_json, check_unicode

Metadata = dict[str, Any]


def content_hash(text: str, vector: np.ndarray | None = None) -> str:
    h = hashlib.sha256(text.encode("utf-8"))
    if vector is not None:
        h.update(np.ascontiguousarray(vector, np.float32).tobytes())
    return h.hexdigest()[:32]


def check_batch(
    texts: Sequence[str] | None,
    ids: Sequence[str] | None,
    metadatas: Sequence[Metadata | None] | None,
    vectors: np.ndarray | None,
    need_ids: bool,
) -> tuple[list[str], list[str], list[Metadata | None]]:
    """Validate lengths, types and Unicode -> (texts, ids, metadatas); generates ids when
    allowed. Every item is checked before the caller embeds or stores any."""
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
        check_unicode(t, f"text {i}")
    id_list = _check_ids(ids, n, need_ids)
    metas = _check_metadatas(metadatas, id_list)
    if vectors is not None and len(np.asarray(vectors)) != n:
        raise InputError(f"got {n} texts but {len(np.asarray(vectors))} vectors")
    return text_list, id_list, metas


def check_ids(ids: Sequence[str]) -> list[str]:
    """A list of ids to look up or delete: strings, not one bare string."""
    if isinstance(ids, str):
        raise InputError("ids must be a list of strings; wrap a single id in a list")
    out = list(ids)
    for i, doc_id in enumerate(out):
        if not isinstance(doc_id, str):
            raise InputError(f"id {i} must be a string, got {type(doc_id).__name__}")
    return out


def _check_ids(ids: Sequence[str] | None, n: int, need_ids: bool) -> list[str]:
    if ids is None:
        if need_ids:
            raise InputError("upsert needs ids")
        return [uuid.uuid4().hex for _ in range(n)]
    if isinstance(ids, str):
        raise InputError("ids must be a list of strings; wrap a single id in a list")
    id_list = list(ids)
    if len(id_list) != n:
        raise InputError(f"got {n} texts but {len(id_list)} ids")
    seen: set[str] = set()
    for i, doc_id in enumerate(id_list):
        if not isinstance(doc_id, str) or not doc_id:
            raise InputError(f"id {i} must be a non-empty string, got {doc_id!r}")
        check_unicode(doc_id, f"id {i}")
        if doc_id in seen:
            raise Conflict(f"id {doc_id!r} appears twice in this batch")
        seen.add(doc_id)
    return id_list


def _check_metadatas(
    metadatas: Sequence[Metadata | None] | None, ids: list[str]
) -> list[Metadata | None]:
    n = len(ids)
    if metadatas is None:
        return [None] * n
    metas = list(metadatas)
    if len(metas) != n:
        raise InputError(f"got {n} texts but {len(metas)} metadatas")
    for i, m in enumerate(metas):
        if m is None:
            continue
        where = f"metadata {i} ({ids[i]!r})"
        if not isinstance(m, dict) or not all(isinstance(k, str) for k in m):
            raise InputError(f"{where} must be a dict with string keys")
        check_json(m, where)
        try:
            json.dumps(m, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where} is not JSON-serialisable: {exc}") from exc
    return metas


def pick_rows(vectors: np.ndarray | None, rows: list[int]) -> np.ndarray | None:
    return None if vectors is None else np.asarray(vectors)[rows]


def _show(ids: list[str]) -> str:
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return ", ".join(repr(i) for i in ids[:5]) + more


def conflict_message(name: str, ids: list[str]) -> str:
    return f"ids already in collection {name!r}: {_show(ids)}; use upsert to replace them"


def missing_message(name: str, ids: list[str]) -> str:
    return f"not in collection {name!r}: {_show(ids)}"
