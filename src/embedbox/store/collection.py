"""Collections: persistent documents + vectors with semantic, keyword and hybrid search.

>>> col = Collection.open("news", create=True)          # all-MiniLM-L6-v2 by default
>>> col.add(["Rain is forecast for Sydney", "Stocks fell"], metadatas=[{"topic": "weather"}, {}])
>>> col.search("weather in Australia", k=5, where={"topic": "weather"})

SQLite (one file per collection, WAL) holds the documents, metadata and chunks; the vector file
holds each chunk vector once (both are the collection's data). The row arrays and the ANN index
are derived and rebuilt from them when missing or stale. Long texts are split into token windows
("chunks"); search ranks documents by their best chunk and hits carry that chunk's span.
The collection embeds texts itself and hands only vectors to the search and storage helpers.
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

import numpy as np

from embedbox import catalog
from embedbox.errors import (
    Conflict,
    EmbedboxError,
    EmbedboxWarning,
    InputError,
    NotFound,
    StorageError,
)
from embedbox.inputs import check_unicode
from embedbox.store import db, filters, slots, vecfile
from embedbox.store import embedding as em
from embedbox.store import rows as sq
from embedbox.store import search as sr
from embedbox.store import validate as va
from embedbox.store.ann import AnnIndex, AnnOptions
from embedbox.store.chunking import ChunkOptions
from embedbox.store.filters import Filters
from embedbox.store.paths import DB_FILE, collection_dir, resolve_data_dir
from embedbox.store.search import Hit
from embedbox.store.vectors import VectorTable, doc_vectors, forget, shared_table
from embedbox.types import Mode, Where

if TYPE_CHECKING:
    from embedbox.embed import Embedder
    from embedbox.store.reembed import ReembedReport

__all__ = ["Collection", "Hit", "Item", "UpsertStats", "drop_collection", "list_collections"]

PRECISIONS = ("float32", "float16")  # how vectors are stored
Query = str | np.ndarray | Sequence[float]


@dataclass
class UpsertStats:
    """What an upsert did: `added` new ids, `updated` (text, vector or metadata changed),
    `unchanged` (nothing to do, nothing embedded)."""

    ids: list[str]
    added: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class Item:
    """A stored document; `vector` is its document-level vector when asked for."""

    id: str
    text: str
    metadata: dict[str, Any]
    vector: np.ndarray | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text, "metadata": self.metadata}
        if self.vector is not None:
            out["vector"] = self.vector.tolist()
        return out


_ANN: dict[str, AnnIndex] = {}
_ANN_LOCK = threading.Lock()
P = ParamSpec("P")
R = TypeVar("R")
SWITCH_RETRIES = 3  # a write or search embedding across a model switch is done again


class _ModelSwitched(Conflict):  # internal: caught by `_while_model_holds`
    """The collection's model changed between embedding and writing."""


def _guarded(
    method: Callable[Concatenate[Collection, P], R],
) -> Callable[Concatenate[Collection, P], R]:
    """SQLite failures inside a method (a damaged page, a full disk) become one `StorageError`
    naming the collection and its file, instead of a raw sqlite3 traceback."""

    @functools.wraps(method)
    def wrapper(self: Collection, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise db.storage_error(
                exc, self.path / DB_FILE, f"use collection {self.name!r} in"
            ) from exc

    return wrapper


class Collection:
    """A named, persistent collection. Open with `Collection.open(...)`."""

    def __init__(
        self,
        folder: Path,
        conn: sqlite3.Connection,
        *,
        embedder: Embedder | None = None,
        ann: AnnOptions | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = folder
        self._key = str(folder.resolve())  # process-wide caches are keyed by this
        self.conn = conn
        self.read_only = read_only
        self.meta = db.read_meta(conn)
        self.name: str = self.meta["name"]
        self.model: str = self.meta["model"]
        self.kind: str = self.meta["kind"]
        self.chunking = ChunkOptions(**self.meta["chunking"])
        self.ann_options = ann or AnnOptions()
        self.ann_options.check()
        self._embedder = embedder
        self._lock = threading.RLock()
        self._filters = sr.FilterCache()
        self._query_cache: dict[str, np.ndarray] = {}
        self._seen: tuple[int, int, int] | None = None  # (data_version, total_changes, gen)
        self._warned: set[str] = set()  # metadata keys warned about (text compared as numbers)
        self._model_generation = int(self.meta.get("model_generation", 0))  # `reembed` switches
        if embedder is not None:
            self._check_embedder(embedder)

    # ---- opening ------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        name_or_path: str | Path,
        model: str | None = None,
        *,
        data_dir: str | Path | None = None,
        create: bool = False,
        kind: str | None = None,
        dim: int | None = None,
        precision: str = "float32",
        normalize: bool = True,
        chunking: ChunkOptions | None = None,
        embedder: Embedder | None = None,
        ann: AnnOptions | None = None,
        read_only: bool | None = None,
    ) -> Collection:
        """Open a collection by name (under the data dir) or folder path.

        `create=True` creates it if missing, recording `model` (default all-MiniLM-L6-v2), its
        `kind` and `dim` (from the catalog, or given), the storage `precision` and `normalize`.
        Opening with a different `model` than recorded is a `Conflict`. `embedder`: reuse a
        loaded `Embedder` instead of loading one. `read_only=True` opens without write access
        (None: read-only only when the folder cannot be written); writes then raise.
        """
        folder, name = collection_dir(name_or_path, resolve_data_dir(data_dir))
        db_path = folder / DB_FILE
        if not db_path.exists():
            if not create:
                raise NotFound(
                    f"no collection {name!r} in {folder.parent}; create it with `embedbox "
                    f"collection create {name}` or Collection.open(..., create=True)"
                )
            if read_only:
                raise InputError(f"cannot create collection {name!r} read-only")
            meta = _new_meta(name, model, kind, dim, precision, normalize, chunking, embedder)
            conn = _create(folder, db_path, meta)
            read_only = False
        else:
            if read_only is None:
                read_only = not os.access(folder, os.W_OK) or not os.access(db_path, os.W_OK)
            conn = db.connect(db_path, read_only=read_only)
            try:
                db.migrate(conn, db_path, read_only)
                col = cls(folder, conn, embedder=embedder, ann=ann, read_only=read_only)
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise db.storage_error(exc, db_path, f"read collection {name!r} in") from exc
            except BaseException:
                conn.close()
                raise
            if model is not None and not catalog.same_model(model, col.model):
                conn.close()
                raise Conflict(
                    f"collection {col.name!r} uses model {col.model!r}, not {model!r}; open it "
                    "without a model or create another collection"
                )
            return col
        return cls(folder, conn, embedder=embedder, ann=ann)

    def close(self) -> None:
        with self._lock:
            self._follow_model()
            ann = _ANN.get(self._key)
            if ann is not None:
                ann.flush()
            if not self.read_only and self.dim:
                shared_table(self._key, self.dim, self.precision).save()
            self.conn.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, model={self.model!r}, path='{self.path}')"

    # ---- properties ---------------------------------------------------------------------
    @property
    def dim(self) -> int | None:
        d = self.meta.get("dim")
        return int(d) if d is not None else None

    @property
    def normalize(self) -> bool:
        return bool(self.meta["normalize"])

    @property
    def precision(self) -> str:
        return str(self.meta["precision"])

    @property
    def embedder(self) -> Embedder:
        """The text `Embedder` for this collection's model, loaded on first use."""
        if self._embedder is None:
            if self.kind not in ("text", "text-image"):
                raise InputError(
                    f"collection {self.name!r} holds {self.kind} vectors from {self.model!r}; "
                    "pass vectors= to add and a query vector to search"
                )
            from embedbox.embed import Embedder

            emb = Embedder(self.model)
            self._check_embedder(emb)
            self._embedder = emb
        return self._embedder

    def _check_embedder(self, emb: Embedder) -> None:
        if not catalog.same_model(emb.name, self.model):
            raise Conflict(f"collection {self.name!r} uses model {self.model!r}, not {emb.name!r}")
        if self.dim is not None and emb.dim != self.dim:
            raise Conflict(f"collection {self.name!r} has dim {self.dim}, model gives {emb.dim}")

    @property
    def generation(self) -> int:
        """The write generation: every committed write, by any process, raises it (one
        indexed read; `info()` also counts rows)."""
        with self._lock:
            return db.generations(self.conn)[0]

    # ---- writing ------------------------------------------------------------------------
    @_guarded
    def add(
        self,
        texts: Sequence[str] | None,
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
    ) -> list[str]:
        """Add new documents (one transaction) -> their ids. An existing id is a `Conflict`."""
        self._writable()
        texts, id_list, metas = va.check_batch(texts, ids, metadatas, vectors, False)
        with self._lock:
            taken = sq.existing(self.conn, id_list)
        if taken:
            raise Conflict(va.conflict_message(self.name, list(taken)))
        return self._while_model_holds(
            vectors is not None, lambda seen: self._add(texts, id_list, metas, vectors, seen)
        )

    def _add(
        self,
        texts: list[str],
        id_list: list[str],
        metas: list[dict[str, Any] | None],
        vectors: np.ndarray | None,
        seen: int,
    ) -> list[str]:
        prepared = self._prepare(texts, vectors)  # embedding: no lock held
        with self._lock, self._write() as conn, self._append(conn) as out:
            self._check_model(conn, seen)
            taken = sq.existing(conn, id_list)
            if taken:
                raise Conflict(va.conflict_message(self.name, list(taken)))
            for doc_id, text, meta, prep in zip(id_list, texts, metas, prepared, strict=True):
                sq.insert(conn, doc_id, text, meta or {}, prep, out.add(prep.vectors))
        return id_list

    def upsert(
        self,
        texts: Sequence[str] | None,
        *,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
    ) -> list[str]:
        """Insert or replace documents by id. Unchanged texts are not re-embedded; a `None`
        metadata keeps the stored one."""
        return self.upsert_stats(texts, ids=ids, metadatas=metadatas, vectors=vectors).ids

    @_guarded
    def upsert_stats(
        self,
        texts: Sequence[str] | None,
        *,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
    ) -> UpsertStats:
        """`upsert`, reporting how many documents were added, replaced and left unchanged."""
        self._writable()
        texts, id_list, metas = va.check_batch(texts, ids, metadatas, vectors, True)
        return self._while_model_holds(
            vectors is not None, lambda seen: self._upsert(texts, id_list, metas, vectors, seen)
        )

    def _upsert(
        self,
        texts: list[str],
        id_list: list[str],
        metas: list[dict[str, Any] | None],
        vectors: np.ndarray | None,
        seen: int,
    ) -> UpsertStats:
        stats = UpsertStats(id_list)
        with self._lock:
            old = sq.existing(self.conn, id_list)
        todo = list(range(len(id_list)))
        if vectors is None:  # unchanged texts: skip before embedding
            todo = [
                i
                for i in todo
                if id_list[i] not in old or old[id_list[i]][1] != va.content_hash(texts[i])
            ]
        batch = self._prepare([texts[i] for i in todo], va.pick_rows(vectors, todo))
        prepared = dict(zip(todo, batch, strict=True))
        if not any(
            _changes(old.get(d), prepared.get(i), m)
            for i, (d, m) in enumerate(zip(id_list, metas, strict=True))
        ):
            stats.unchanged = len(id_list)  # nothing to write, so the generation stays
            return stats
        old_file = None
        with self._lock, self._write() as conn, self._append(conn) as out:
            self._check_model(conn, seen)
            old = sq.existing(conn, id_list)
            removed = False
            for i, (doc_id, meta) in enumerate(zip(id_list, metas, strict=True)):
                prep = prepared.get(i)
                if doc_id in old:
                    rid, old_hash, old_meta = old[doc_id]
                    if prep is None or old_hash == prep.hash:
                        if meta is not None and sq.load_metadata(old_meta) != meta:
                            sq.set_metadata(conn, rid, meta)
                            stats.updated += 1
                        else:
                            stats.unchanged += 1
                        continue
                    sq.delete_docs(conn, [rid])
                    removed = True
                    stats.updated += 1
                    meta = meta if meta is not None else sq.load_metadata(old_meta)
                else:
                    stats.added += 1
                if prep is None:  # added by another writer since, then removed: embed now
                    prep = self._prepare([texts[i]], va.pick_rows(vectors, [i]))[0]
                sq.insert(conn, doc_id, texts[i], meta or {}, prep, out.add(prep.vectors))
            if removed:
                db.mark_deleted(conn)
                old_file = self._compact(conn, out)
        self._removed(old_file)
        return stats

    @_guarded
    def update(self, ids: Sequence[str], *, metadatas: Sequence[dict[str, Any]]) -> int:
        """Replace the metadata of stored documents (nothing is embedded) -> number changed.
        A missing id is a `NotFound` naming it, and then nothing is changed."""
        self._writable()
        id_list = va.check_ids(ids)
        _, _, metas = va.check_batch([""] * len(id_list), id_list, metadatas, None, True)
        changed = 0
        with self._lock, self._write() as conn:
            old = sq.existing(conn, id_list)
            missing = [i for i in id_list if i not in old]
            if missing:
                raise NotFound(va.missing_message(self.name, missing))
            for doc_id, meta in zip(id_list, metas, strict=True):
                rid, _, old_meta = old[doc_id]
                if sq.load_metadata(old_meta) != (meta or {}):
                    sq.set_metadata(conn, rid, meta or {})
                    changed += 1
        return changed

    @_guarded
    def delete(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> int:
        """Delete documents by id and/or filters -> number deleted (missing ids are skipped)."""
        self._writable()
        if ids is None and where is None and where_document is None:
            raise InputError("delete needs ids or a where filter (delete(where={}) deletes all)")
        id_list = None if ids is None else va.check_ids(ids)
        given = where is not None or where_document is not None
        compiled = Filters(where, where_document).sql() if given else None
        old_file = None
        with self._lock, self._write() as conn:
            rids: set[int] | None = None
            if id_list is not None:
                rids = {v[0] for v in sq.existing(conn, id_list).values()}
            if compiled is not None:
                found = sq.filter_docs(conn, *compiled)
                rids = found if rids is None else rids & found
            if rids:
                sq.delete_docs(conn, sorted(rids))
                db.mark_deleted(conn)
                old_file = self._compact(conn, None)
        self._removed(old_file)
        return len(rids or ())

    def reembed(
        self,
        model: str | Embedder,
        *,
        batch: int = 256,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReembedReport:
        """Embed the stored texts again with `model` (a name, folder or `Embedder`) and switch
        the collection to it in one commit; searches meanwhile use the old model. An
        interrupted run resumes when started again with the same model. See store/reembed.py."""
        from embedbox.store.reembed import reembed

        self._writable()
        report = reembed(self, model, batch=batch, progress=progress)
        with self._lock:
            self._follow_model()
        return report

    # ---- reading ------------------------------------------------------------------------
    @_guarded
    def count(self) -> int:
        with self._lock:
            return sq.count_documents(self.conn)

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[Item]:
        return self.items()

    def items(
        self,
        where: Where | None = None,
        *,
        where_document: Where | None = None,
        batch: int = 1000,
    ) -> Iterator[Item]:
        """All documents (optionally filtered) in insertion order, read page by page."""
        sql, params = Filters(where, where_document).sql()
        after = 0
        while True:
            rows = self._page(sql, params, after, batch)
            if not rows:
                return
            for _, doc_id, text, meta in rows:
                yield Item(doc_id, text, sq.load_metadata(meta))
            after = rows[-1][0]

    @_guarded
    def _page(self, sql: str, params: list[Any], after: int, size: int) -> list[Any]:
        with self._lock:
            return sq.page(self.conn, sql, params, after, size)

    def peek(self, n: int = 10) -> list[Item]:
        """The first `n` documents (as Chroma's `peek`)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InputError(f"n must be a positive integer, got {n!r}")
        return [item for item, _ in zip(self.items(batch=n), range(n), strict=False)]

    def get(self, ids: Sequence[str], *, include_vectors: bool = False) -> list[Item]:
        """Documents by id, in the order asked. Missing ids are a `NotFound` naming them."""
        id_list = va.check_ids(ids)
        with self._lock:
            rows = sq.by_ids(self.conn, id_list)
            missing = [i for i in id_list if i not in rows]
            if missing:
                raise NotFound(va.missing_message(self.name, missing))
            vecs: dict[str, np.ndarray] = {}
            if include_vectors:
                got, mat = self.vectors(ids=id_list)
                vecs = dict(zip(got, mat, strict=True))
        return [Item(i, rows[i][0], sq.load_metadata(rows[i][1]), vecs.get(i)) for i in id_list]

    @_guarded
    def vectors(
        self,
        ids: Sequence[str] | None = None,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> tuple[list[str], np.ndarray]:
        """Document-level vectors -> (ids, float32 (n, dim)). A chunked document's vector is
        the mean of its chunk vectors (re-normalised when the collection normalises)."""
        id_list = None if ids is None else va.check_ids(ids)
        with self._lock:
            table = self._table()
            rows = sq.doc_rids(self.conn, *Filters(where, where_document).sql())
        by_id = {doc_id: rid for rid, doc_id in rows}
        if id_list is not None:
            missing = [i for i in id_list if i not in by_id]
            if missing:
                raise NotFound(va.missing_message(self.name, missing))
            order = [(by_id[i], i) for i in id_list]
        else:
            order = [(rid, doc_id) for rid, doc_id in rows]
        want = np.array([rid for rid, _ in order], np.int64)
        for _ in range(3):  # documents written after the matrix was read: refresh and retry
            out, found = doc_vectors(table, want, self.normalize)
            if found.all():
                break
            with self._lock:
                table = self._table()
        else:
            raise Conflict("the collection kept changing while reading vectors; retry")
        return [doc_id for _, doc_id in order], out

    @_guarded
    def info(self) -> dict[str, Any]:
        with self._lock:
            self._follow_model()
            gen, _ = db.generations(self.conn)
            chunks = sq.count_chunks(self.conn)
            count = sq.count_documents(self.conn)
            version = db.version(self.conn)
        return {
            "name": self.name,
            "path": str(self.path),
            "model": self.model,
            "kind": self.kind,
            "dim": self.dim,
            "precision": self.precision,
            "normalize": self.normalize,
            "metric": "cosine" if self.normalize else "dot",
            "count": count,
            "chunks": chunks,
            "chunking": asdict(self.chunking),
            "index": self._index_kind(chunks),
            "generation": gen,
            "schema_version": version,
            "created": self.meta.get("created"),
            "read_only": self.read_only,
        }

    def _index_kind(self, chunks: int) -> str:
        """exact, hnsw or ivf: what searches of the whole collection use."""
        if chunks <= self.ann_options.threshold:
            return "exact"
        ann = _ANN.get(self._key)
        if ann is not None and ann.kind:
            return ann.kind
        itemsize = vecfile.DTYPES[self.precision].itemsize
        return self.ann_options.kind_for(chunks, self.dim or 0, itemsize)

    def check(self) -> list[str]:
        """SQLite's integrity check of the collection's database: [] when sound."""
        with self._lock:
            try:
                return db.integrity(self.conn)
            except sqlite3.DatabaseError as exc:
                return [str(exc)]

    # ---- search -------------------------------------------------------------------------
    @overload
    def search(  # type: ignore[overload-overlap]  # a str is a Sequence[str]: str wins
        self,
        query: str,
        *,
        k: int = 10,
        where: Where | None = None,
        where_document: Where | None = None,
        mode: Mode = "semantic",
        weights: tuple[float, float] = (1.0, 1.0),
        include: Sequence[str] = ("text", "metadata"),
    ) -> list[Hit]: ...

    @overload
    def search(
        self,
        query: Sequence[str],
        *,
        k: int = 10,
        where: Where | None = None,
        where_document: Where | None = None,
        mode: Mode = "semantic",
        weights: tuple[float, float] = (1.0, 1.0),
        include: Sequence[str] = ("text", "metadata"),
    ) -> list[list[Hit]]: ...

    @overload
    def search(
        self,
        query: np.ndarray | Sequence[float],
        *,
        k: int = 10,
        where: Where | None = None,
        where_document: Where | None = None,
        mode: Mode = "semantic",
        weights: tuple[float, float] = (1.0, 1.0),
        include: Sequence[str] = ("text", "metadata"),
    ) -> list[Any]: ...

    def search(
        self,
        query: Query | Sequence[str],
        *,
        k: int = 10,
        where: Where | None = None,
        where_document: Where | None = None,
        mode: Mode = "semantic",
        weights: tuple[float, float] = (1.0, 1.0),
        include: Sequence[str] = ("text", "metadata"),
    ) -> list[Hit] | list[list[Hit]]:
        """Top-`k` documents for a text or vector query, best first.

        `mode`: "semantic" (cosine/dot on vectors), "keyword" (SQLite FTS5 BM25) or "hybrid"
        (reciprocal rank fusion, k=60, with `weights` = (semantic, keyword)). `where` filters on
        metadata *before* ranking, so a selective filter still returns its best matches.
        `include`: the hit fields to fill besides id, score and span (others are left empty);
        `include=()` answers from memory alone, without reading the database.

        A list of texts, or a 2-D array of vectors, is a batch: one hit list per query, the
        texts embedded in one pass.
        """
        flt = Filters(where, where_document)
        batch = _batch(query)
        if batch is None:
            return self._search([query], k, flt, mode, weights, include)[0]  # type: ignore[list-item]
        return self._search(batch, k, flt, mode, weights, include)

    @_guarded
    def _search(
        self,
        queries: list[Any],
        k: int,
        flt: Filters,
        mode: Mode,
        weights: tuple[float, float],
        include: Sequence[str],
    ) -> list[list[Hit]]:
        fields = sr.check_search(k, mode, include)
        texts = [sr.check_text_query(q, mode) for q in queries] if mode != "semantic" else []
        flt.sql()  # a bad filter fails before any embedding
        if mode == "keyword":
            out = [sr.only(self._keyword(q, k, flt), fields) for q in texts]
        else:
            vecs, table = self._vectors_and_table(queries)
            if mode == "semantic":
                out = [self._semantic(v, k, flt, fields, table) for v in vecs]
            else:
                depth = max(50, 2 * k)
                out = []
                for q, v in zip(texts, vecs, strict=True):
                    sem = self._semantic(v, depth, flt, sr.FIELDS, table)
                    kw = self._keyword(q, depth, flt)
                    out.append(sr.only(sr.fuse(sem, kw, weights, k), fields))
        if flt.where and any(len(hits) < k for hits in out):
            self._warn_text_ranges(flt.where)
        return out

    def _warn_text_ranges(self, where: Where) -> None:
        """A filter that compares a field with numbers skips documents storing text there
        (e.g. years read from a CSV as text by older versions): say so, once per field."""
        for key in sorted(filters.range_keys(where) - self._warned):
            with self._lock:
                text = sq.holds_text(self.conn, key)
            if text:
                self._warned.add(key)
                warnings.warn(
                    f"collection {self.name!r}: some documents store metadata {key!r} as text, "
                    f"so numeric comparisons on {key!r} skip them; store numbers as numbers "
                    "(re-add them, e.g. from a CSV with type inference)",
                    EmbedboxWarning,
                    stacklevel=4,
                )

    def _vectors_and_table(self, queries: list[Any]) -> tuple[list[np.ndarray], VectorTable]:
        """The query vectors and the vector table, of one model: when the collection switched
        models (`reembed`) while the queries were embedded, they are embedded again."""
        for _ in range(SWITCH_RETRIES):
            seen = self._model_generation  # no read: a switch not seen yet shows up below
            vecs = self._query_vectors(queries)
            with self._lock:
                table = self._table()
                if self._model_generation == seen:
                    return vecs, table
        raise Conflict(f"collection {self.name!r} kept switching models; search again")

    def _query_vectors(self, queries: list[Any]) -> list[np.ndarray]:
        """Each query as a normalised vector: texts embedded in one pass (recent ones cached)."""
        texts = [q for q in queries if isinstance(q, str)]
        for i, q in enumerate(texts):
            if not q.strip():
                raise InputError(
                    "the query is empty" if len(queries) == 1 else f"query {i} is empty"
                )
            check_unicode(q, "the query" if len(queries) == 1 else f"query {i}")
        todo = list(dict.fromkeys(t for t in texts if t not in self._query_cache))
        if todo:
            vecs = self.embedder.embed(todo, input_type="query")
            for text, vec in zip(todo, vecs, strict=True):
                vec = np.asarray(vec, np.float32)
                if self.normalize:
                    vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
                if len(self._query_cache) >= 256:  # recent queries; repeats skip the model
                    self._query_cache.pop(next(iter(self._query_cache)))
                self._query_cache[text] = vec
        cache = self._query_cache
        return [
            cache[q]
            if isinstance(q, str)
            else em.check_query(q, self.dim, self.normalize, self.name)
            for q in queries
        ]

    def _semantic(
        self, qvec: np.ndarray, k: int, flt: Filters, fields: frozenset[str], table: VectorTable
    ) -> list[Hit]:
        with self._lock:
            allowed = self._filters.allowed(self.conn, table, flt)
            ann = self._ann() if len(table) > self.ann_options.threshold else None
        rows, scores = sr.vector_top(table, ann, qvec, k, allowed, self.ann_options)
        if not fields:  # answered from memory: no database read, so no lock
            return sr.vector_hits(self.conn, table, rows, scores, fields)
        with self._lock:
            return sr.vector_hits(self.conn, table, rows, scores, fields)

    def _keyword(self, query: str, k: int, flt: Filters) -> list[Hit]:
        match = sr.fts_query(query)
        sql, params = flt.sql()
        with self._lock:
            top = sq.keyword(self.conn, match, sql, params, k)
            return sr.make_hits(self.conn, [r for r, _ in top], [s for _, s in top])

    # ---- internals ----------------------------------------------------------------------
    def _writable(self) -> None:
        if self.read_only:
            raise StorageError(
                f"collection {self.name!r} is open read-only ({self.path} or its database "
                "cannot be written); make it writable to change it",
                "read_only",
            )

    def _write(self) -> Any:
        return db.write(self.conn, self.path / DB_FILE)

    def _prepare(self, texts: list[str], vectors: np.ndarray | None) -> list[em.Prepared]:
        """Chunk spans and vectors of each document: given vectors checked, texts embedded
        (chunks already stored are taken from the database instead)."""
        if vectors is not None:
            mat = em.check_vectors(vectors, self.dim, self.normalize, self.name)
            self._set_dim(mat.shape[1])
            return em.from_vectors(texts, mat)
        if not texts:
            return []
        emb = self.embedder
        prepared = em.embed_documents(texts, emb, self.chunking, self._stored_vectors)
        self._set_dim(emb.dim)
        return prepared

    def _stored_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        if self.dim is None or not hashes:
            return {}
        with self._lock:
            self.conn.execute("BEGIN")  # slots and the file they refer to agree
            try:
                found = sq.slots_by_hash(self.conn, hashes)
                epoch, _ = db.vector_state(self.conn)
            finally:
                self.conn.execute("COMMIT")
        if not found:
            return {}
        path = self.path / vecfile.file_name(epoch)
        try:
            mat = vecfile.read_rows(path, self.dim, self.precision, list(found.values()))
        except OSError:  # compacted meanwhile: embed them again
            return {}
        return dict(zip(found, mat, strict=True))

    def _append(self, conn: sqlite3.Connection) -> Any:
        """Inside a write: slots for new vectors, written and synced before the commit."""
        return slots.appending(conn, self.path, self.dim or 0, self.precision)

    def _compact(self, conn: sqlite3.Connection, out: vecfile.Appender | None) -> Path | None:
        """Inside a write that removed chunks: compact the vector file when enough of it is
        dead (new vectors of this write are written first)."""
        if out is not None:
            slots.commit(conn, out)
        return slots.compact_if_needed(conn, self.path, self.dim, self.precision)

    def _removed(self, old_file: Path | None) -> None:
        """After the commit of a compaction: the previous vector file can go."""
        if old_file is not None:
            old_file.unlink(missing_ok=True)

    def _set_dim(self, dim: int) -> None:
        if self.dim is None:
            with self._lock, self._write() as conn:
                db.set_meta(conn, "dim", dim)
            self.meta["dim"] = dim
        elif self.dim != dim:
            raise Conflict(f"collection {self.name!r} has dim {self.dim}, got vectors of {dim}")

    def _table(self) -> VectorTable:
        """The shared vector table, brought up to date only when the database changed: `PRAGMA
        data_version` (commits by other connections) and `total_changes` (this one's) are far
        cheaper per search than reading the generation rows."""
        if self.dim is None:  # another process may have stored the first vectors since
            self.meta["dim"] = db.read_meta(self.conn).get("dim")
            if self.dim is None:
                return VectorTable(0)
        shared = shared_table(self._key, self.dim or 0, self.precision)
        table = shared.table
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if (version, self.conn.total_changes, table.generation) != self._seen:
            table = self._refresh()
            self._seen = (version, self.conn.total_changes, table.generation)
        return table

    def _refresh(self) -> VectorTable:
        """The table brought up to date, for the model in effect: again when a model switch
        lands between reading the model and reading the rows (the file then has another dim)."""
        for _ in range(SWITCH_RETRIES + 2):
            seen = self._follow_model()
            shared = shared_table(self._key, self.dim or 0, self.precision)
            try:
                table = shared.refresh(self.conn)
            except (StorageError, ValueError):
                if db.model_generation(self.conn) == seen:
                    raise
                continue
            if db.model_generation(self.conn) == seen:
                return table
        raise Conflict(f"collection {self.name!r} kept switching models; try again")

    def _follow_model(self) -> int:
        """Adopt a model switch (`reembed`) committed by any process: queries and new texts
        are embedded with the new model from now on -> the model generation in effect."""
        gen = db.model_generation(self.conn)
        if gen != self._model_generation:
            self.meta = db.read_meta(self.conn)
            self.model = self.meta["model"]
            self._embedder = None  # loaded again, for the new model, on first use
            self._query_cache = {}  # a new dict: a search still embedding fills the old one
            self._model_generation = gen
        return gen

    def _check_model(self, conn: sqlite3.Connection, seen: int) -> None:
        """Inside a write: the vectors about to be stored came from the model in effect."""
        if db.model_generation(conn) != seen:
            raise _ModelSwitched

    def _while_model_holds(self, given: bool, write: Callable[[int], R]) -> R:
        """Run `write(model generation)` (it embeds, then writes), again if the collection
        switched models in between; given vectors cannot be made again: a `Conflict`."""
        for _ in range(SWITCH_RETRIES):
            with self._lock:
                seen = self._follow_model()
            try:
                return write(seen)
            except _ModelSwitched:
                pass
            except ValueError:  # stored vectors of the new size read with the old one
                with self._lock:
                    if db.model_generation(self.conn) == seen:
                        raise
            if given:
                with self._lock:
                    self._follow_model()
                raise Conflict(
                    f"collection {self.name!r} switched to model {self.model!r} while these "
                    "vectors were added; embed them with that model and add them again"
                )
        raise Conflict(f"collection {self.name!r} kept switching models; try again")

    def _ann(self) -> AnnIndex:
        key = self._key
        with _ANN_LOCK:
            ann = _ANN.get(key)
            if ann is None or ann.options != self.ann_options or ann.dim != (self.dim or 0):
                ann = _ANN[key] = AnnIndex(self.path, self.dim or 0, self.ann_options)
            return ann


def _changes(
    old: tuple[int, str, str] | None, prep: em.Prepared | None, meta: dict[str, Any] | None
) -> bool:
    """Whether upserting a document (its stored row, new vectors, new metadata) writes anything."""
    if old is None:
        return True
    if prep is not None and prep.hash != old[1]:
        return True
    return meta is not None and sq.load_metadata(old[2]) != meta


def _batch(query: object) -> list[Any] | None:
    """The queries of a batch search (a list of texts or vectors, a 2-D array), else None."""
    if isinstance(query, np.ndarray):
        return list(query) if query.ndim == 2 else None
    if isinstance(query, list | tuple) and query and not isinstance(query[0], int | float):
        return list(query)
    return None


def _new_meta(
    name: str,
    model: str | None,
    kind: str | None,
    dim: int | None,
    precision: str,
    normalize: bool,
    chunking: ChunkOptions | None,
    embedder: Embedder | None,
) -> dict[str, Any]:
    """A new collection's settings, checked before anything is written."""
    model = catalog.canonical_name(
        model or (embedder.name if embedder else catalog.DEFAULT_TEXT_MODEL)
    )
    spec = catalog.find(model)
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    chunking = chunking or ChunkOptions()
    chunking.check()
    return {
        "name": name,
        "model": model,
        "kind": kind or (spec.kind if spec else "text"),
        "dim": dim or (spec.dim if spec else None) or (embedder.dim if embedder else None),
        "precision": precision,
        "normalize": normalize,
        "chunking": asdict(chunking),
        "created": time.time(),
    }


def _create(folder: Path, db_path: Path, meta: dict[str, Any]) -> sqlite3.Connection:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create collection folder {folder}: {exc.strerror}") from exc
    conn = db.connect(db_path)
    try:
        db.create(conn, meta)
    except Conflict:
        pass  # another process created it first
    except sqlite3.OperationalError as exc:
        conn.close()
        raise db.storage_error(exc, db_path, "create") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def list_collections(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Info of every collection under the data dir, sorted by name. One that cannot be read
    (damaged, unreadable) is listed with an `error` instead, so the others still show."""
    root = resolve_data_dir(data_dir) / "collections"
    out = []
    for folder in sorted(root.glob("*/")) if root.exists() else []:
        if (folder / DB_FILE).exists():
            try:
                with Collection.open(folder) as col:
                    out.append(col.info())
            except EmbedboxError as exc:
                out.append({"name": folder.name, "path": str(folder), "error": str(exc)})
    return out


def drop_collection(name_or_path: str | Path, data_dir: str | Path | None = None) -> None:
    """Delete a collection and its files. A missing collection is a `NotFound`."""
    folder, name = collection_dir(name_or_path, resolve_data_dir(data_dir))
    if not (folder / DB_FILE).exists():
        raise NotFound(f"no collection {name!r} in {folder.parent}")
    forget(str(folder.resolve()))
    with _ANN_LOCK:
        _ANN.pop(str(folder.resolve()), None)
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise StorageError(f"cannot delete collection {name!r}: {exc.strerror}") from exc
