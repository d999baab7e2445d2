"""Dataset jobs on the local engine: same vectors as `Embedder.embed`, resumable, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedbox import Embedder
from embedbox.errors import Conflict, InputError
from embedbox.scale import JobSpec, read_errors, run_job
from tests.scale_data import read_output, vectors, write_jsonl


@pytest.fixture(scope="module")
def pool_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, object]]]:
    """60 good rows + 3 bad + 1 broken line, embedded by a pool of 2 spawned workers."""
    base = tmp_path_factory.mktemp("pool")
    rows = write_jsonl(base / "in.jsonl", 60)
    spec = JobSpec(
        (str(base / "in.jsonl"),),
        str(base / "out"),
        id_column="doc",
        shard_rows=16,
        workers=2,
        compute="fp32",
    )
    report = run_job(spec)
    assert report.workers == 2
    assert (report.rows, report.bad_rows, report.shards, report.skipped_shards) == (60, 4, 4, 0)
    return base, rows


def test_local_pool_matches_embed(
    pool_job: tuple[Path, list[dict[str, object]]], embedder: Embedder
) -> None:
    base, rows = pool_job
    table = read_output(base / "out")
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 384)
    assert table.column_names == ["id", "vector", "text", "score"]
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(str(r["doc"]) for r in rows)
    by_id = {str(r["doc"]): r for r in rows}
    expected = embedder.embed([str(by_id[i]["text"]) for i in ids])
    np.testing.assert_allclose(vectors(table), expected, atol=2e-5)
    assert table.column("score").to_pylist() == [by_id[i]["score"] for i in ids]
    assert table.column("text").to_pylist() == [by_id[i]["text"] for i in ids]


@pytest.mark.model
def test_bad_rows_go_to_errors_file(pool_job: tuple[Path, list[dict[str, object]]]) -> None:
    base, _ = pool_job
    errors = read_errors(str(base / "out"))
    assert [e["id"] for e in errors] == ["bad-empty", "bad-type", "bad-missing", None]
    assert "empty text" in errors[0]["error"]
    assert "int, not a string" in errors[1]["error"]
    assert "missing text" in errors[2]["error"]
    assert "invalid JSON" in errors[3]["error"] and errors[3]["row"] == 30
    manifest = json.loads((base / "out" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["model"]["name"] == "all-MiniLM-L6-v2"
    assert manifest["summary"]["bad_rows"] == 4


@pytest.mark.model
def test_rerun_skips_finished_shards(
    pool_job: tuple[Path, list[dict[str, object]]], embedder: Embedder
) -> None:
    base, _ = pool_job
    parts = sorted((base / "out").glob("part-*.parquet"))
    before = [p.stat().st_mtime_ns for p in parts]
    spec = JobSpec(
        (str(base / "in.jsonl"),),
        str(base / "out"),
        id_column="doc",
        shard_rows=16,
        workers=1,
        compute="fp32",
    )
    report = run_job(spec, embedder=embedder)
    assert (report.skipped_shards, report.rows, report.total_rows) == (4, 0, 60)
    assert [p.stat().st_mtime_ns for p in parts] == before


@pytest.mark.model
def test_rerun_with_other_settings_is_a_conflict(
    pool_job: tuple[Path, list[dict[str, object]]],
) -> None:
    base, _ = pool_job
    spec = JobSpec(
        (str(base / "in.jsonl"),),
        str(base / "out"),
        id_column="doc",
        shard_rows=16,
        precision="float16",
        compute="fp32",
    )
    with pytest.raises(Conflict, match=r"precision: 'float32' -> 'float16'.*--overwrite"):
        run_job(spec)


def test_strict_stops_at_first_bad_row(tmp_path: Path, embedder: Embedder) -> None:
    write_jsonl(tmp_path / "in.jsonl", 20)
    spec = JobSpec(
        (str(tmp_path / "in.jsonl"),),
        str(tmp_path / "out"),
        id_column="doc",
        workers=1,
        compute="fp32",
        strict=True,
    )
    with pytest.raises(
        InputError, match=r"in.jsonl row 5 \(id 'bad-empty'\): empty text.*--strict"
    ):
        run_job(spec, embedder=embedder)
    assert not list((tmp_path / "out").glob("part-*.parquet"))


def test_parquet_row_groups_float16_matryoshka(tmp_path: Path, embedder: Embedder) -> None:
    texts = [str(r["text"]) for r in write_jsonl(tmp_path / "x.jsonl", 45, bad=False)]
    table = pa.table({"body": texts, "n": list(range(45))})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=10)
    spec = JobSpec(
        (str(tmp_path / "in.parquet"),),
        str(tmp_path / "out"),
        text_column="body",
        keep=("n",),
        precision="float16",
        dimensions=128,
        shard_rows=15,
        workers=1,
        compute="fp32",
    )
    report = run_job(spec, embedder=embedder)
    assert (report.shards, report.total_rows, report.dim) == (3, 45, 128)
    out = read_output(tmp_path / "out")
    assert out.column_names == ["id", "vector", "n"]
    assert out.schema.field("vector").type == pa.list_(pa.float16(), 128)
    assert out.column("id").to_pylist() == [f"in.parquet:{i}" for i in range(45)]
    expected = embedder.embed(texts, dimensions=128)
    np.testing.assert_allclose(vectors(out).astype(np.float32), expected, atol=2e-3)


def test_folder_of_csv_and_txt_gets_default_ids(tmp_path: Path, embedder: Embedder) -> None:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text('text,lang\n"A man, a plan",en\nUn chat,fr\n', encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("first line\n\nsecond line\n", encoding="utf-8")
    spec = JobSpec((str(folder),), str(tmp_path / "out"), workers=1, compute="fp32")
    report = run_job(spec, embedder=embedder)
    assert report.total_rows == 4
    out = read_output(tmp_path / "out")
    assert out.column("id").to_pylist() == ["a.csv:0", "a.csv:1", "sub/b.txt:0", "sub/b.txt:1"]
    assert out.column("lang").to_pylist() == ["en", "fr", None, None]
    texts = ["A man, a plan", "Un chat", "first line", "second line"]
    np.testing.assert_allclose(vectors(out), embedder.embed(texts), atol=2e-5)


def test_missing_text_column_is_a_clear_error(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", 3, bad=False)
    spec = JobSpec((str(tmp_path / "in.jsonl"),), str(tmp_path / "out"), text_column="body")
    with pytest.raises(
        InputError, match=r"no column 'body' \(columns: doc, text, score\).*--text-field"
    ):
        run_job(spec)


def test_output_loads_into_collection_without_reembedding(
    pool_job: tuple[Path, list[dict[str, object]]], embedder: Embedder, tmp_path: Path
) -> None:
    from embedbox.scale.load import load_embeddings_into
    from embedbox.store.collection import Collection

    base, rows = pool_job
    with Collection.open("batch", data_dir=tmp_path, create=True, embedder=embedder) as col:
        report = load_embeddings_into(col, base / "out")
        assert (report.rows, report.added, report.shards) == (60, 60, 4)
        assert col.count() == 60
        (item,) = col.get(["d7"], include_vectors=True)
        assert item.text == rows[7]["text"] and item.metadata == {"score": rows[7]["score"]}
        assert item.vector is not None
        np.testing.assert_allclose(item.vector, embedder.embed([item.text])[0], atol=2e-5)
        assert col.search(str(rows[7]["text"]), k=1)[0].id == "d7"
        again = load_embeddings_into(col, base / "out")
        assert (again.added, again.unchanged) == (0, 60)
    with (
        Collection.open("other", "other-model", data_dir=tmp_path, create=True, dim=384) as col,
        pytest.raises(Conflict, match=r"holds 'all-MiniLM-L6-v2' vectors.*uses 'other-model'"),
    ):
        load_embeddings_into(col, base / "out")
    with (
        Collection.open("narrow", data_dir=tmp_path, create=True, dim=128, embedder=None) as col,
        pytest.raises(Conflict, match=r"384-d vectors but collection 'narrow' has dim 128"),
    ):
        load_embeddings_into(col, base / "out")


def test_cli_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedbox.cli import main

    write_jsonl(tmp_path / "in.jsonl", 3, bad=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["embed-dataset", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out"),
              "--text-column", "body"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no column 'body'" in err and "--text-field" in err
    with pytest.raises(SystemExit):
        main(["embed-dataset", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out2"),
              "--engine", "spark"])  # fmt: skip
    assert "unknown engine 'spark'; choose local or ray" in capsys.readouterr().err
