"""Bad input and broken storage: every case is one clear error, nothing half-written or poisoned.

Vector collections of random unit vectors: no model is loaded here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

from embedbox import Collection, EmbedboxWarning, InputError, StorageError, list_collections
from embedbox.store import filters
from embedbox.store.ingest import IngestOptions, ingest
from tests.cli_runner import run_cli

RNG = np.random.default_rng(7)


def vectors(n: int, dim: int = 16) -> np.ndarray:
    return RNG.normal(size=(n, dim)).astype(np.float32)


def make(root: Path, name: str, n: int = 20) -> Collection:
    col = Collection.open(name, "my-vectors", data_dir=root, create=True, kind="vector", dim=16)
    col.add([f"text {i}" for i in range(n)], ids=[f"d{i}" for i in range(n)], vectors=vectors(n))
    return col


# ---- invalid Unicode ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "texts, ids, metas, where",
    [
        (["bad \ud800 text"], ["a"], None, "text 0"),
        (["fine"], ["id\udc80"], None, "id 0"),
        (["fine"], ["a"], [{"k": "v\ud800"}], "metadata 0 ('a')"),
        (["fine"], ["a"], [{"k\ud800": 1}], "metadata 0 ('a'): key"),
        (["fine"], ["a"], [{"k": [{"deep": "\udfff"}]}], "metadata 0 ('a').k[0].deep"),
    ],
)
def test_invalid_unicode_is_refused_before_anything_is_stored(
    tmp_path: Path,
    texts: list[str],
    ids: list[str],
    metas: list[dict[str, object]] | None,
    where: str,
) -> None:
    col = make(tmp_path, "u")
    before = col.generation
    with pytest.raises(InputError, match=r"not valid Unicode") as exc:
        col.add(texts, ids=ids, metadatas=metas, vectors=vectors(1))
    assert where in str(exc.value)
    assert col.count() == 20 and col.generation == before  # nothing written


def test_invalid_unicode_in_a_query_or_filter(tmp_path: Path) -> None:
    col = make(tmp_path, "q")
    with pytest.raises(InputError, match="not valid Unicode"):
        col.search("bad \ud800", mode="keyword")
    with pytest.raises(InputError, match=r"where.k.\$eq.*not valid Unicode"):
        col.search(vectors(1)[0], where={"k": {"$eq": "x\ud800"}})
    with pytest.raises(InputError, match="invalid metadata key"):
        col.search(vectors(1)[0], where={"k\ud800": 1})


def test_a_row_poisoned_by_an_older_version_still_reads(tmp_path: Path) -> None:
    col = make(tmp_path, "p", n=3)
    # What embedbox < 0.2 stored: json.dumps escapes the lone surrogate, SQLite takes it.
    col.conn.execute(
        "UPDATE documents SET metadata = ? WHERE id = 'd1'", (json.dumps({"who": "x\ud800y"}),)
    )
    item = col.get(["d1"])[0]
    assert item.metadata == {"who": "x\ufffdy"}
    json.dumps(item.metadata, ensure_ascii=False).encode("utf-8")  # printable, writable
    hits = col.search(col.vectors(ids=["d1"])[1][0], k=1)
    assert hits[0].metadata == {"who": "x\ufffdy"}
    assert [i.metadata for i in col.items()][1] == {"who": "x\ufffdy"}
    emoji = {"who": "\U0001f600"}  # escaped as a surrogate *pair*: left as it is
    col.update(["d2"], metadatas=[emoji])
    assert col.get(["d2"])[0].metadata == emoji


# ---- filters ------------------------------------------------------------------------------
def test_filter_depth_counts_nested_objects_not_lists() -> None:
    assert filters.depth({"a": 1}) == 1
    assert filters.depth({"a": {"$gt": 1}}) == 2
    assert filters.depth({"$and": [{"a": 1}, {"$or": [{"b": {"$lt": 2}}]}]}) == 4
    deep: dict[str, object] = {"a": 1}
    for _ in range(5000):  # no RecursionError, a clear InputError
        deep = {"$not": deep}
    with pytest.raises(InputError, match=r"nests 5001 filter objects deep; the limit is 32"):
        filters.compile_where(deep)


# ---- damaged files ------------------------------------------------------------------------
def _damage(db: Path, how: str) -> None:
    data = bytearray(db.read_bytes())
    if how == "truncate":
        db.write_bytes(bytes(data[: len(data) // 3]))
    elif how == "header":
        db.write_bytes(b"not a database at all" + bytes(data[21:]))
    else:  # garbage in the middle: every page after the first
        page = 4096
        for at in range(page, len(data), page):
            data[at + 100 : at + 900] = b"\xde\xad" * 400
        db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "header", "middle"])
def test_one_damaged_collection_does_not_hide_the_others(tmp_path: Path, how: str) -> None:
    make(tmp_path, "good").close()
    bad = make(tmp_path, "bad", n=2000)
    bad.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    bad.close()
    db = tmp_path / "collections" / "bad" / "collection.db"
    _damage(db, how)
    listed = {c["name"]: c for c in list_collections(tmp_path)}
    assert listed["good"]["count"] == 20
    if "error" not in listed["bad"]:  # a header that still reads: the damage shows on use
        with Collection.open("bad", data_dir=tmp_path) as col:
            with pytest.raises(StorageError, match=r"collection 'bad'.*damaged"):
                list(col.items())
            assert col.check()  # the integrity check names what is wrong
        return
    assert "collection.db" in listed["bad"]["error"]
    with pytest.raises(StorageError, match=r"collection.db") as exc:
        Collection.open("bad", data_dir=tmp_path)
    assert exc.value.reason in ("damaged", "unreadable")
    out = run_cli("collection", "list", "--data-dir", str(tmp_path), "--json")
    assert out.code == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["good"]["count"] == 20 and "error" in rows["bad"]
    out = run_cli("collection", "info", "bad", "--data-dir", str(tmp_path))
    assert out.code != 0 and len(out.error_lines) == 1 and "collection.db" in out.stderr


def test_collection_check(tmp_path: Path) -> None:
    make(tmp_path, "ok").close()
    out = run_cli("collection", "check", "ok", "--data-dir", str(tmp_path))
    assert out.code == 0 and "ok" in out.stdout
    bad = make(tmp_path, "bad", n=2000)
    bad.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    bad.close()
    _damage(tmp_path / "collections" / "bad" / "collection.db", "middle")
    out = run_cli("collection", "check", "bad", "--data-dir", str(tmp_path))
    assert out.code == 1 and "bad" in out.stderr and len(out.error_lines) == 1


# ---- read-only and full ---------------------------------------------------------------------
def test_a_read_only_folder_is_read_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = make(tmp_path, "ro")
    q = col.vectors(ids=["d3"])[1][0]
    col.close()
    folder = tmp_path / "collections" / "ro"
    for leftover in folder.glob("collection.db-*"):  # as after a clean shutdown
        leftover.unlink()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode))
    with Collection.open("ro", data_dir=tmp_path) as col:
        assert col.read_only and col.info()["read_only"]
        assert col.search(q, k=1)[0].id == "d3" and col.count() == 20
        with pytest.raises(StorageError, match=r"collection 'ro' is open read-only"):
            col.add(["x"], vectors=vectors(1))
        with pytest.raises(StorageError, match="read-only"):
            col.delete(["d1"])
    # the database refuses writes too, not only our check
    conn = sqlite3.connect((folder / "collection.db").as_uri() + "?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM documents")


def test_a_full_disk_is_one_line_with_what_was_committed(tmp_path: Path) -> None:
    col = make(tmp_path, "full", n=1)
    pages = col.conn.execute("PRAGMA page_count").fetchone()[0]
    col.conn.execute(f"PRAGMA max_page_count = {pages + 40}")  # SQLite's own "disk is full"
    data = tmp_path / "in.jsonl"
    rows = ({"id": f"r{i}", "text": "t", "v": vectors(1)[0].tolist()} for i in range(3000))
    data.write_text("\n".join(json.dumps(r) for r in rows))
    opts = IngestOptions(id_field="id", vector_field="v", batch_size=100)
    with pytest.raises(StorageError) as exc:
        ingest(col, [data], opts)
    message = str(exc.value)
    assert exc.value.reason == "full" and "disk is full" in message
    assert "collection.db" in message and "documents of this run were committed" in message
    assert "cannot rollback" not in message and "\n" not in message
    committed = col.count() - 1
    assert committed % 100 == 0 and f"{committed} documents" in message
    assert col.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---- filters compare like with like ----------------------------------------------------------
def test_range_filters_compare_numbers_with_numbers_and_warn_about_text(tmp_path: Path) -> None:
    col = Collection.open("y", "my-vectors", data_dir=tmp_path, create=True, kind="vector", dim=16)
    years = [1990, 2005, "1995", "2010"]  # the last two as an older CSV ingest stored them
    col.add(
        [f"doc {y}" for y in years],
        ids=["n1990", "n2005", "t1995", "t2010"],
        metadatas=[{"year": y} for y in years],
        vectors=vectors(4),
    )
    q = vectors(1)[0]
    with pytest.warns(EmbedboxWarning, match=r"metadata 'year' as text"):
        got = {h.id for h in col.search(q, k=4, where={"year": {"$gte": 2000}})}
    assert got == {"n2005"}  # the text "2010" is not a number; "1995" is not >= 2000 either
    assert {h.id for h in col.search(q, k=4, where={"year": {"$lt": "2000"}})} == {"t1995"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per field, not on every query
        col.search(q, k=4, where={"year": {"$lte": 2000}})


def test_an_unchanged_upsert_writes_nothing(tmp_path: Path) -> None:
    col = Collection.open("g", "my-vectors", data_dir=tmp_path, create=True, kind="vector", dim=16)
    texts, ids, vecs = ["a", "b", "c"], ["d0", "d1", "d2"], vectors(3)
    col.upsert(texts, ids=ids, vectors=vecs)
    gen = col.generation
    stats = col.upsert_stats(texts, ids=ids, vectors=vecs)  # re-running an import
    assert (stats.unchanged, stats.added, stats.updated) == (3, 0, 0) and col.generation == gen
    col.upsert(["a"], ids=["d0"], metadatas=[{"new": 1}], vectors=vecs[:1])
    assert col.generation == gen + 1


def test_self_similarity_is_at_most_one() -> None:
    from embedbox.similarity import similarity_matrix

    m = similarity_matrix(vectors(50, 384), vectors(50, 384))
    assert m.max() <= 1.0 and m.min() >= -1.0
    x = vectors(200, 384)
    assert similarity_matrix(x, x).max() <= 1.0  # the diagonal, rounded, never above 1


def test_query_shapes_are_named_clearly(tmp_path: Path) -> None:
    col = make(tmp_path, "s")
    with pytest.raises(InputError, match="a query must be a text or a vector"):
        col.search(None)  # type: ignore[call-overload]
    with pytest.raises(InputError, match="query vector has 8 dimensions; collection 's' has 16"):
        col.search(vectors(1, 8)[0])
    batch = col.search(vectors(2), k=3)  # a 2-D array is a batch of queries
    assert len(batch) == 2 and all(len(hits) == 3 for hits in batch)
