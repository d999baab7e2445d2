"""`add --from-embeddings`: every shard is checked before the first write, a shard whose rows
were all bad keeps the full schema (older outputs without it still load), and an error exit
means nothing was loaded, or says how far it got and that loading again resumes. A tiny random
BERT (tests/tiny_models.py) embeds the job: no pretrained model is loaded here."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embedbox import Collection, StorageError, list_collections
from embedbox.scale import JobSpec, run_job
from embedbox.scale.load import load_embeddings_into
from tests.cli_runner import run_cli
from tests.tiny_models import build

GOOD = ["a cat sleeps", "a dog barks", "rain in Perth", "markets fell", "tea is hot", "snow"]
BAD = [{"text": "  "}, {"text": 42}, {"other": "no text"}]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards of 3 rows: good, all bad (0 rows written), good."""
    base = tmp_path_factory.mktemp("job")
    tiny = build("bert", base / "tiny")
    rows = [{"doc": f"d{i}", "text": t, "year": 2000 + i} for i, t in enumerate(GOOD)]
    bad = [{"doc": f"bad{i}", **r, "year": 1} for i, r in enumerate(BAD)]
    lines = [json.dumps(r) for r in rows[:3] + bad + rows[3:]]
    (base / "in.jsonl").write_text("\n".join(lines) + "\n")
    spec = JobSpec(
        (str(base / "in.jsonl"),),
        str(base / "out"),
        model=str(tiny),
        id_column="doc",
        shard_rows=3,
        workers=1,
        compute="fp32",
    )
    report = run_job(spec)
    assert (report.rows, report.bad_rows, report.shards) == (6, 3, 3)
    return base / "out"


def parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


def test_a_shard_of_bad_rows_keeps_the_schema_and_loads(job: Path, tmp_path: Path) -> None:
    empty = pq.read_table(parts(job)[1])
    assert empty.num_rows == 0
    # the columns of its rows, as in a shard with good rows (plus `other`, which one bad row had)
    assert pq.read_table(parts(job)[0]).column_names == ["id", "vector", "text", "year"]
    assert empty.column_names == ["id", "vector", "text", "year", "other"]
    out = run_cli(
        "add", "docs", "--from-embeddings", str(job), "--json", "--data-dir", str(tmp_path)
    )
    assert out.code == 0, out.stderr
    assert json.loads(out.stdout)["count"] == 6
    with Collection.open("docs", data_dir=tmp_path) as col:
        assert col.get(["d4"])[0].metadata == {"year": 2004}


def copy_job(job: Path, dest: Path) -> Path:
    dest.mkdir()
    for path in job.iterdir():
        if path.is_file():
            (dest / path.name).write_bytes(path.read_bytes())
    return dest


def test_an_older_empty_shard_without_columns_is_skipped(job: Path, tmp_path: Path) -> None:
    out = copy_job(job, tmp_path / "old")
    empty = parts(out)[1]
    pq.write_table(pq.read_table(empty).select(["id", "vector"]), empty)  # as older versions did
    res = run_cli("add", "docs", "--from-embeddings", str(out), "--data-dir", str(tmp_path))
    assert res.code == 0, res.stderr
    assert "6 vectors from 3 shard(s)" in res.stdout


def test_every_shard_is_checked_before_the_first_write(job: Path, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert run_cli("add", "docs", "--from-embeddings", str(job), "--data-dir", data).code == 0
    out = copy_job(job, tmp_path / "broken")
    last = parts(out)[2]
    table = pq.read_table(last)
    pq.write_table(table.drop_columns(["text"]), last)
    for name in ("docs", "fresh"):  # an existing collection, and one that would be created
        res = run_cli("add", name, "--from-embeddings", str(out), "--data-dir", data)
        assert res.code == 2 and len(res.error_lines) == 1, res.stderr
        assert f"{last} has no 'text' column" in res.stderr and "nothing was loaded" in res.stderr
    assert [c["name"] for c in list_collections(data)] == ["docs"]
    with Collection.open("docs", data_dir=data) as col:
        assert col.count() == 6
    last.unlink()
    res = run_cli("add", "docs", "--from-embeddings", str(out), "--data-dir", data)
    assert res.code == 2 and "listed in manifest.json but missing" in res.stderr


def test_a_wrong_model_is_refused_before_the_collection_is_made(job: Path, tmp_path: Path) -> None:
    res = run_cli(
        "add", "docs", "--from-embeddings", str(job), "-m", "all-MiniLM-L6-v2",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert res.code == 2 and "vectors, not 'all-MiniLM-L6-v2'" in res.stderr
    assert list_collections(tmp_path) == []


def test_a_load_stopped_halfway_says_how_far_it_got(
    job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Collection.upsert_stats
    calls = []

    def upsert_then_fail(self: Collection, *args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise StorageError("disk full writing the collection", "full")
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    model = json.loads((job / "manifest.json").read_text())["model"]
    col = Collection.open("docs", model["name"], data_dir=tmp_path, create=True)
    monkeypatch.setattr(Collection, "upsert_stats", upsert_then_fail)
    with pytest.raises(StorageError, match=r"3 of 6 rows were loaded before it; loading again"):
        load_embeddings_into(col, job)
    monkeypatch.setattr(Collection, "upsert_stats", real)
    report = load_embeddings_into(col, job)
    assert (report.added, report.unchanged, col.count()) == (3, 3, 6)
    col.close()
