"""Collections: persistent documents + vectors with semantic, keyword and hybrid search.

>>> col = Collection.open("news", create=True)          # all-MiniLM-L6-v2 by default
>>> col.add(["Rain is forecast for Sydney", "Stocks fell"], metadatas=[{"topic": "weather"}, {}])
>>> col.search("weather in Australia", k=5, where={"topic": "weather"})

SQLite (one file per collection, WAL) is the source of truth; the vector matrix and the HNSW index
are derived and rebuilt from it when missing or stale. Long texts are split into token windows
("chunks"); search ranks documents by their best chunk and hits carry that chunk's span.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedbox.errors import Conflict, EmbedboxError, InputError, NotFound
from embedbox.store import db
from embedbox.store import prepare as pr
from embedbox.store import rows as sq
from embedbox.store import search as sr
from embedbox.store.ann import AnnIndex, AnnOptions
from embedbox.store.chunking import ChunkOptions
from embedbox.store.filters import Where, compile_where
from embedbox.store.paths import DB_FILE, collection_dir, resolve_data_dir
from embedbox.store.search import Hit
from embedbox.store.vectors import VectorTable, doc_vectors, forget, shared_table

__all__ = [
    "Collection",
    "Hit",
    "Item",
    "Mode",
    "UpsertStats",
    "drop_collection",
    "list_collections",
]

Mode = Literal["semantic", "keyword", "hybrid"]


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


class Collection:
    """A named, persistent collection. Open with `Collection.open(...)`."""

    def __init__(
        self, folder: Path, conn: Any, embedder: Any = None, ann: AnnOptions | None = None
    ) -> None:
        self.path = folder
        self._key = str(folder.resolve())  # process-wide caches are keyed by this
        self.conn = conn
        self.meta = db.read_meta(conn)
        self.name: str = self.meta["name"]
        self.model: str = self.meta["model"]
        self.kind: str = self.meta["kind"]
        self.chunking = ChunkOptions(**self.meta["chunking"])
        self.ann_options = ann or AnnOptions()
        self._embedder = embedder
        self._lock = threading.RLock()
        self._filters = sr.FilterCache()
        self._query_cache: dict[str, np.ndarray] = {}
        self._seen: tuple[int, int, int] | None = None  # (data_version, total_changes, gen)
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
        embedder: Any = None,
        ann: AnnOptions | None = None,
    ) -> Collection:
        """Open a collection by name (under the data dir) or folder path.

        `create=True` creates it if missing, recording `model` (default all-MiniLM-L6-v2), its
        `kind` and `dim` (from the catalog, or given), the storage `precision` and `normalize`.
        Opening with a different `model` than recorded is a `Conflict`. `embedder`: reuse a
        loaded `Embedder` instead of loading one.
        """
        folder, name = collection_dir(name_or_path, resolve_data_dir(data_dir))
        db_path = folder / DB_FILE
        if not db_path.exists():
            if not create:
                raise NotFound(
                    f"no collection {name!r} at {folder}; create it with "
                    f"`embedbox collection create {name}` or Collection.open(..., create=True)"
                )
            folder.mkdir(parents=True, exist_ok=True)
            conn = db.connect(db_path)
            try:
                meta = pr.new_meta(name, model, kind, dim, precision, normalize, chunking, embedder)
                db.create(conn, meta)
            except Conflict:
                pass  # another process created it first
            except BaseException:
                conn.close()
                raise
        else:
            conn = db.connect(db_path)
            db.migrate(conn, db_path)
        col = cls(folder, conn, embedder, ann)
        if model is not None and not pr.same_model(model, col.model):
            conn.close()
            raise Conflict(
                f"collection {col.name!r} uses model {col.model!r}, not {model!r}; open it "
                "without a model or create another collection"
            )
        return col

    def close(self) -> None:
        with self._lock:
            ann = _ANN.get(self._key)
            if ann is not None:
                ann.flush()
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
    def embedder(self) -> Any:
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

    def _check_embedder(self, emb: Any) -> None:
        if not pr.same_model(emb.name, self.model):
            raise Conflict(f"collection {self.name!r} uses model {self.model!r}, not {emb.name!r}")
        if self.dim is not None and emb.dim != self.dim:
            raise Conflict(f"collection {self.name!r} has dim {self.dim}, model gives {emb.dim}")

    # ---- writing ------------------------------------------------------------------------
    def add(
        self,
        texts: Sequence[str] | None,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
    ) -> list[str]:
        """Add new documents (one transaction) -> their ids. An existing id is a `Conflict`."""
        texts, id_list, metas = pr.check_batch(self.name, texts, ids, metadatas, vectors, False)
        with self._lock:
            taken = sq.existing(self.conn, id_list)
        if taken:
            raise Conflict(pr.conflict_message(self.name, list(taken)))
        prepared = pr.prepare(self, texts, vectors)  # embedding: no lock held
        with self._lock, db.write(self.conn) as conn:
            taken = sq.existing(self.conn, id_list)
            if taken:
                raise Conflict(pr.conflict_message(self.name, list(taken)))
            for doc_id, text, meta, prep in zip(id_list, texts, metas, prepared, strict=True):
                sq.insert(conn, doc_id, text, meta or {}, prep, self.precision)
        return id_list

    def upsert(
        self,
        texts: Sequence[str] | None,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
    ) -> list[str]:
        """Insert or replace documents by id. Unchanged texts are not re-embedded; a `None`
        metadata keeps the stored one."""
        return self.upsert_stats(texts, ids, metadatas, vectors).ids

    def upsert_stats(
        self,
        texts: Sequence[str] | None,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        vectors: np.ndarray | None = None,
    ) -> UpsertStats:
        """`upsert`, reporting how many documents were added, replaced and left unchanged."""
        texts, id_list, metas = pr.check_batch(self.name, texts, ids, metadatas, vectors, True)
        stats = UpsertStats(id_list)
        with self._lock:
            old = sq.existing(self.conn, id_list)
        todo = list(range(len(id_list)))
        if vectors is None:  # unchanged texts: skip before embedding
            todo = [
                i
                for i in todo
                if id_list[i] not in old or old[id_list[i]][1] != pr.content_hash(texts[i])
            ]
        prepared = dict(
            zip(
                todo,
                pr.prepare(self, [texts[i] for i in todo], pr.pick_rows(vectors, todo)),
                strict=True,
            )
        )
        with self._lock, db.write(self.conn) as conn:
            old = sq.existing(self.conn, id_list)
            removed = False
            for i, (doc_id, meta) in enumerate(zip(id_list, metas, strict=True)):
                prep = prepared.get(i)
                if doc_id in old:
                    rid, old_hash, old_meta = old[doc_id]
                    if prep is None or old_hash == prep.hash:
                        if meta is not None and json.loads(old_meta) != meta:
                            conn.execute(
                                "UPDATE documents SET metadata = ? WHERE rid = ?",
                                (json.dumps(meta), rid),
                            )
                            stats.updated += 1
                        else:
                            stats.unchanged += 1
                        continue
                    sq.delete_docs(conn, [rid])
                    removed = True
                    stats.updated += 1
                    meta = meta if meta is not None else json.loads(old_meta)
                else:
                    stats.added += 1
                if prep is None:  # added by another writer since, then removed: embed now
                    prep = pr.prepare(self, [texts[i]], pr.pick_rows(vectors, [i]))[0]
                sq.insert(conn, doc_id, texts[i], meta or {}, prep, self.precision)
            if removed:
                db.mark_deleted(conn)
        return stats

    def delete(self, ids: Sequence[str] | None = None, where: Where | None = None) -> int:
        """Delete documents by id and/or filter -> number deleted (missing ids are skipped)."""
        if ids is None and where is None:
            raise InputError("delete needs ids or a where filter (delete(where={}) deletes all)")
        if isinstance(ids, str):
            raise InputError("ids must be a list of strings; wrap a single id in a list")
        with self._lock, db.write(self.conn) as conn:
            rids: set[int] | None = None
            if ids is not None:
                rids = {v[0] for v in sq.existing(self.conn, list(ids)).values()}
            if where is not None:
                found = sq.filter_docs(conn, *compile_where(where))
                rids = found if rids is None else rids & found
            if rids:
                sq.delete_docs(conn, sorted(rids))
                db.mark_deleted(conn)
            return len(rids or ())

    # ---- reading ------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[Item]:
        return self.items()

    def items(self, where: Where | None = None, batch: int = 1000) -> Iterator[Item]:
        """All documents (optionally filtered) in insertion order, read page by page."""
        sql, params = compile_where(where)
        after = 0
        while True:
            with self._lock:
                rows = sq.page(self.conn, sql, params, after, batch)
            if not rows:
                return
            for _, doc_id, text, meta in rows:
                yield Item(doc_id, text, json.loads(meta))
            after = rows[-1][0]

    def get(self, ids: Sequence[str], include_vectors: bool = False) -> list[Item]:
        """Documents by id, in the order asked. Missing ids are a `NotFound` naming them."""
        if isinstance(ids, str):
            raise InputError("ids must be a list of strings; wrap a single id in a list")
        id_list = list(ids)
        with self._lock:
            rows = sq.by_ids(self.conn, id_list)
            missing = [i for i in id_list if i not in rows]
            if missing:
                raise NotFound(pr.missing_message(self.name, missing))
            vecs: dict[str, np.ndarray] = {}
            if include_vectors:
                got, mat = self.vectors(ids=id_list)
                vecs = dict(zip(got, mat, strict=True))
        return [Item(i, rows[i][0], json.loads(rows[i][1]), vecs.get(i)) for i in id_list]

    def vectors(
        self, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> tuple[list[str], np.ndarray]:
        """Document-level vectors -> (ids, float32 (n, dim)). A chunked document's vector is
        the mean of its chunk vectors (re-normalised when the collection normalises)."""
        with self._lock:
            table = self._table()
            sql, params = compile_where(where)
            rows = self.conn.execute(
                f"SELECT d.rid, d.id FROM documents d WHERE {sql} ORDER BY d.rid", params
            ).fetchall()
        by_id = {doc_id: rid for rid, doc_id in rows}
        if ids is not None:
            missing = [i for i in ids if i not in by_id]
            if missing:
                raise NotFound(pr.missing_message(self.name, missing))
            order = [(by_id[i], i) for i in ids]
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

    @property
    def generation(self) -> int:
        """The write generation: every committed write, by any process, raises it (one
        indexed read; `info()` also counts rows)."""
        with self._lock:
            return db.generations(self.conn)[0]

    def info(self) -> dict[str, Any]:
        with self._lock:
            gen, _ = db.generations(self.conn)
            chunks = int(self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
            count = self.count()
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
            "index": "hnsw" if chunks > self.ann_options.threshold else "exact",
            "generation": gen,
            "schema_version": db.version(self.conn),
            "created": self.meta.get("created"),
        }

    # ---- search -------------------------------------------------------------------------
    def search(
        self,
        query: str | np.ndarray,
        k: int = 10,
        where: Where | None = None,
        mode: Mode = "semantic",
        weights: tuple[float, float] = (1.0, 1.0),
        include: Sequence[str] = ("text", "metadata"),
    ) -> list[Hit]:
        """Top-`k` documents for a text or vector query, best first.

        `mode`: "semantic" (cosine/dot on vectors), "keyword" (SQLite FTS5 BM25) or "hybrid"
        (reciprocal rank fusion, k=60, with `weights` = (semantic, keyword)). `where` filters on
        metadata *before* ranking, so a selective filter still returns its best matches.
        `include`: the hit fields to fill besides id, score and span (others are left empty);
        `include=()` answers from memory alone, without reading the database.
        """
        fields = sr.check_search(query, k, mode, include)
        if mode == "semantic":
            return self._semantic(query, k, where, fields)
        assert isinstance(query, str)
        if mode == "keyword":
            return sr.only(self._keyword(query, k, where), fields)
        depth = max(50, 2 * k)
        sem = self._semantic(query, depth, where, sr.FIELDS)
        return sr.only(sr.fuse(sem, self._keyword(query, depth, where), weights, k), fields)

    def _semantic(
        self, query: str | np.ndarray, k: int, where: Where | None, fields: frozenset[str]
    ) -> list[Hit]:
        qvec = pr.query_vector(self, query)
        with self._lock:
            table = self._table()
            allowed = self._filters.allowed(self.conn, table, where)
            ann = self._ann() if len(table) > self.ann_options.threshold else None
        rows, scores = sr.vector_top(table, ann, qvec, k, allowed, self.ann_options)
        if not fields:  # answered from memory: no database read, so no lock
            return sr.vector_hits(self.conn, table, rows, scores, fields)
        with self._lock:
            return sr.vector_hits(self.conn, table, rows, scores, fields)

    def _keyword(self, query: str, k: int, where: Where | None) -> list[Hit]:
        match = sr.fts_query(query)
        sql, params = compile_where(where)
        with self._lock:
            top = sq.keyword(self.conn, match, sql, params, k)
            return sr.make_hits(self.conn, [r for r, _ in top], [s for _, s in top])

    # ---- internals ----------------------------------------------------------------------
    def _table(self) -> VectorTable:
        """The shared vector table, brought up to date only when the database changed: `PRAGMA
        data_version` (commits by other connections) and `total_changes` (this one's) are far
        cheaper per search than reading the generation rows."""
        shared = shared_table(self._key, self.dim or 0, self.precision)
        table = shared.table
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if (version, self.conn.total_changes, table.generation) != self._seen:
            table = shared.refresh(self.conn)
            self._seen = (version, self.conn.total_changes, table.generation)
        return table

    def _ann(self) -> AnnIndex:
        key = self._key
        with _ANN_LOCK:
            ann = _ANN.get(key)
            if ann is None or ann.options != self.ann_options:
                ann = _ANN[key] = AnnIndex(self.path, self.dim or 0, self.ann_options)
            return ann


def list_collections(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Info of every collection under the data dir, sorted by name (an unreadable one is
    listed with an `error` instead)."""
    root = resolve_data_dir(data_dir) / "collections"
    out = []
    for folder in sorted(root.glob("*/")) if root.exists() else []:
        if (folder / DB_FILE).exists():
            try:
                with Collection.open(folder) as col:
                    out.append(col.info())
            except EmbedboxError as exc:  # listed, not fatal: the others still show
                out.append({"name": folder.name, "path": str(folder), "error": str(exc)})
    return out


def drop_collection(name_or_path: str | Path, data_dir: str | Path | None = None) -> None:
    """Delete a collection and its files. A missing collection is a `NotFound`."""
    folder, name = collection_dir(name_or_path, resolve_data_dir(data_dir))
    if not (folder / DB_FILE).exists():
        raise NotFound(f"no collection {name!r} at {folder}")
    forget(str(folder.resolve()))
    with _ANN_LOCK:
        _ANN.pop(str(folder.resolve()), None)
    shutil.rmtree(folder)
