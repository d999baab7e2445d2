"""`embedbox.evaluation` and `embedbox eval` on real MiniLM vectors and slices of shipped data.

The metric definitions are checked against pytrec_eval / scipy / scikit-learn in
tests/test_eval_metrics.py; here: tasks, settings, suites, reports, the CLI and bad input.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedbox import Embedder, InputError
from embedbox.cli import common
from embedbox.cli import main as cli_main
from embedbox.cli.common import app
from embedbox.datasets import sts_b
from embedbox.evaluation import (
    ClassificationTask,
    ClusteringTask,
    Labelled,
    Pair,
    STSTask,
    evaluate,
    evaluate_collection,
    read_beir,
    read_labelled,
    read_pairs,
    suite,
)
from embedbox.evaluation import metrics as M
from embedbox.evaluation.runner import _Vectors
from embedbox.quantize import dequantize
from embedbox.similarity import normalize

runner = CliRunner()


@pytest.fixture()
def cli_embedder(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Embedder:
    """The CLI reuses the session's fp32 MiniLM (and refuses to load anything else)."""

    def load(model: str, compute: str = "auto", *args: object, **kwargs: object) -> Embedder:
        assert (model, compute) == ("all-MiniLM-L6-v2", "fp32"), (model, compute)
        return embedder

    monkeypatch.setattr(common, "get_embedder", load)
    return embedder


def _pairs_file(path: Path, pairs: list[Pair]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"sentence1": p.a, "sentence2": p.b, "score": p.score}) + "\n" for p in pairs
        )
    )
    return path


# ---- tasks and settings ---------------------------------------------------------------------
def test_sts_equals_a_direct_computation(embedder: Embedder) -> None:
    pairs = [Pair(p.a, p.b, p.score) for p in sts_b("test")[:150]]
    report = evaluate(STSTask("slice", pairs), embedder)
    [result] = report.results
    a = embedder.embed([p.a for p in pairs])
    b = embedder.embed([p.b for p in pairs])
    want = M.spearman((a * b).sum(1), [p.score for p in pairs])
    assert result.metrics["spearman"] == pytest.approx(want, abs=1e-6)
    assert 0.7 < want < 1.0
    assert result.texts == len({t for p in pairs for t in (p.a, p.b)}) and result.seconds > 0
    assert result.vector_bytes == 384 * 4 and result.setting.compute == "float32"


@pytest.mark.parametrize(("dims", "precision"), [(None, "int8"), (128, "float16"), (128, "binary")])
def test_settings_are_what_embed_returns(
    embedder: Embedder, dims: int | None, precision: str
) -> None:
    texts = [p.a for p in sts_b("test")[:20]]
    got = _Vectors(embedder).encoder(dims, precision)(texts, None)
    stored = embedder.embed(texts, dimensions=dims, precision=precision)
    want = normalize(dequantize(stored, precision, embedder._calibration(precision, dims)))
    np.testing.assert_array_equal(got, want)


def test_grid_reuses_one_pass_and_sizes_follow_precision(embedder: Embedder) -> None:
    task = STSTask("slice", [Pair(p.a, p.b, p.score) for p in sts_b("test")[:60]])
    report = evaluate(
        task, embedder, dimensions=[None, 128], precision=["float32", "int8", "binary"]
    )
    rows = report.to_dicts()
    assert [(r["dimensions"], r["precision"], r["vector_bytes"]) for r in rows] == [
        (384, "float32", 1536), (384, "int8", 384), (384, "binary", 48),
        (128, "float32", 512), (128, "int8", 128), (128, "binary", 16),
    ]  # fmt: skip
    assert len({r["texts_per_s"] for r in rows}) == 1  # one timed forward pass for all six
    full, binary = rows[0]["spearman"], rows[2]["spearman"]
    assert full > binary > full - 0.1


def test_shipped_suite_slices(embedder: Embedder) -> None:
    tasks = {t.name: t for t in suite(limit=40)}
    assert set(tasks) == {"sts-b", "sts-b-retrieval", "rotten-tomatoes", "mini-newsgroups", "lee"}
    assert tasks["lee"].size() == {"pairs": 40 * 39 // 2}
    assert suite(["lee"])[0].size() == {"pairs": 1225}  # all 50 documents
    retrieval = tasks["sts-b-retrieval"]
    assert retrieval.ignore_identical_ids  # type: ignore[attr-defined]
    report = evaluate(list(tasks.values()), embedder)
    got = {r.task: r.metrics for r in report.results}
    assert got["sts-b-retrieval"]["recall@100"] >= got["sts-b-retrieval"]["recall@10"] >= 0.8
    assert 0.7 < got["sts-b-retrieval"]["ndcg@10"] <= 1
    assert got["rotten-tomatoes"]["accuracy"] >= 0.6
    assert got["mini-newsgroups"]["v_measure"] > 0.5 and got["mini-newsgroups"]["ari"] > 0.5
    assert 0.3 < got["lee"]["pearson"] < 1 and 0.7 < got["sts-b"]["spearman"] < 1


def test_retrieval_never_returns_the_query_itself(embedder: Embedder) -> None:
    task = suite(["sts-b-retrieval"], limit=80)[0]
    seen: list[np.ndarray] = []

    def encode(texts: list[str], input_type: str | None) -> np.ndarray:
        vectors = embedder.embed(texts)
        seen.append(vectors)
        return vectors

    with_self = task.run(encode)  # type: ignore[arg-type]
    task.ignore_identical_ids = False  # type: ignore[attr-defined]
    without = task.run(encode)  # type: ignore[arg-type]
    assert without["mrr@10"] < with_self["mrr@10"]  # a query matches itself best


def test_classification_split_and_kfold(embedder: Embedder) -> None:
    given = suite(["rotten-tomatoes"], 300)[0]
    assert isinstance(given, ClassificationTask) and given.test is not None
    data = given.train
    folds = ClassificationTask("rt", data, folds=3)
    report = evaluate([given, folds], embedder)
    labels = [r.label for r in given.test]
    majority = max(labels.count(x) for x in set(labels)) / len(labels)
    for r in report.results:
        assert majority + 0.03 < r.metrics["accuracy"] <= 1, (r.task, majority)
        assert 0.4 < r.metrics["macro_f1"] <= 1
    with pytest.raises(InputError, match=r"label '.*' has \d+ texts, fewer than the 50 folds"):
        ClassificationTask("rt", data[:60], folds=50)
    with pytest.raises(InputError, match="the test split is empty"):
        ClassificationTask("rt", data, [])
    with pytest.raises(InputError, match="test label\\(s\\) 'neutral' never occur in training"):
        ClassificationTask("rt", data, [Labelled("meh", "neutral")])


def test_clustering_single_class_is_refused() -> None:
    with pytest.raises(InputError, match=r"only one label \('a'\) in 2 texts"):
        ClusteringTask("c", [Labelled("x", "a"), Labelled("y", "a")])


# ---- file formats and their errors ------------------------------------------------------------
def test_pair_files(tmp_path: Path) -> None:
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text(
        "sentence1\tsentence2\tscore\na cat\ta kitten\t4.5\na dog\tthe stock market\t0\n"
    )
    assert read_pairs(tsv) == [
        Pair("a cat", "a kitten", 4.5),
        Pair("a dog", "the stock market", 0.0),
    ]
    bare = tmp_path / "bare.tsv"
    bare.write_text("a cat\ta kitten\t4.5\na dog\tthe stock market\n")
    with pytest.raises(
        InputError, match=r"bare\.tsv:2: 2 columns, expected 3 \(sentence1, sentence2, score\)"
    ):
        read_pairs(bare)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "score": 2}\n'
    )
    with pytest.raises(InputError, match=r"bad\.jsonl:2: no field 'sentence2'"):
        read_pairs(bad)
    flat = _pairs_file(tmp_path / "flat.jsonl", [Pair("a", "b", 3.0), Pair("c", "d", 3.0)])
    with pytest.raises(InputError, match="every pair has the same score"):
        read_pairs(flat)
    word = tmp_path / "word.csv"
    word.write_text("sentence1,sentence2,score\na,b,high\n")
    with pytest.raises(InputError, match=r"word\.csv:2: score 'high' is not a number"):
        read_pairs(word)


def _beir(folder: Path, qrels: str) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "Cats", "text": "A cat sleeps on the mat."}\n'
        '{"_id": "d2", "text": "Stocks fell sharply on Monday."}\n'
        '{"_id": "d3", "text": "The rocket reached orbit."}\n'
    )
    (folder / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "sleeping kitten"}\n{"_id": "q2", "text": "market crash"}\n'
    )
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def test_beir_folder_and_its_errors(tmp_path: Path) -> None:
    good = _beir(tmp_path / "good", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n")
    data = read_beir(good)
    assert data.corpus["d1"] == "Cats A cat sleeps on the mat."
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}
    with pytest.raises(
        InputError, match=r"qrels/test\.tsv:3: unknown document id 'd9' \(not in corpus\.jsonl\)"
    ):
        read_beir(_beir(tmp_path / "doc", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td9\t1\n"))
    with pytest.raises(InputError, match=r"test\.tsv:2: unknown query id 'q7'"):
        read_beir(_beir(tmp_path / "query", "query-id\tcorpus-id\tscore\nq7\td1\t1\n"))
    with pytest.raises(InputError, match=r"test\.tsv: no relevant judgement .*the split is empty"):
        read_beir(_beir(tmp_path / "empty", "query-id\tcorpus-id\tscore\n"))
    with pytest.raises(InputError, match=r"has no qrels/dev\.tsv; splits here: test"):
        read_beir(good, "dev")


def test_labelled_files(tmp_path: Path) -> None:
    one = tmp_path / "one.jsonl"
    one.write_text('{"text": "great", "label": "pos"}\n{"text": "fine", "label": "pos"}\n')
    with pytest.raises(InputError, match=r"one\.jsonl: only one label \('pos'\) in 2 texts"):
        read_labelled(one)
    gap = tmp_path / "gap.csv"
    gap.write_text("text,label\ngreat,pos\nawful,\n")
    with pytest.raises(InputError, match=r"gap\.csv:3: no label in field 'label'"):
        read_labelled(gap)


# ---- CLI ------------------------------------------------------------------------------------
def test_cli_sts_json_and_table(
    cli_embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common.console, "width", 200)  # one table row per line
    pairs = [Pair(p.a, p.b, p.score) for p in sts_b("test")[:40]]
    path = _pairs_file(tmp_path / "mine.jsonl", pairs)
    result = runner.invoke(
        app,
        ["eval", "sts", str(path), "--compute", "fp32", "--precision", "float32,binary", "--json"],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["precision"] for r in rows] == ["float32", "binary"]
    assert {"spearman", "pearson", "texts_per_s", "vector_bytes"} <= set(rows[0])
    assert rows[0]["task"] == "mine" and rows[0]["model"] == "all-MiniLM-L6-v2"
    table = runner.invoke(
        app, ["eval", "sts", str(path), "--compute", "fp32", "--dimensions", "full,64"]
    )
    assert table.exit_code == 0, table.output
    rows_shown = [line for line in table.stdout.splitlines() if "float32" in line]
    assert len(rows_shown) == 2 and "64" in rows_shown[1] and "384" in rows_shown[0]
    assert all(re.search(r"0\.\d{4}", line) for line in rows_shown)


def test_cli_suite_writes_charts(cli_embedder: Embedder, tmp_path: Path) -> None:
    png, html = tmp_path / "q.png", tmp_path / "q.html"
    args = [
        "eval",
        "suite",
        "--task",
        "sts-b,mini-newsgroups",
        "--limit",
        "30",
        "--compute",
        "fp32",
    ]
    result = runner.invoke(app, [*args, "--chart", str(png), "--chart", str(html), "--json"])
    assert result.exit_code == 0, result.output
    assert {r["task"] for r in json.loads(result.stdout)} == {"sts-b", "mini-newsgroups"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html.read_text()
    assert "sts-b" in page and "<script src=" not in page and html.stat().st_size > 1_000_000


def test_cli_retrieval_classification_clustering(cli_embedder: Embedder, tmp_path: Path) -> None:
    folder = _beir(tmp_path / "beir", "q1\td1\t1\nq2\td2\t1\n")  # no header
    result = runner.invoke(app, ["eval", "retrieval", str(folder), "--compute", "fp32", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["ndcg@10"] == 1.0 and row["mrr@10"] == 1.0 and row["recall@1"] == 1.0
    data = suite(["rotten-tomatoes"], 120)[0].train  # type: ignore[attr-defined]
    labelled = tmp_path / "rt.jsonl"
    labelled.write_text(
        "".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in data)
    )
    result = runner.invoke(
        app,
        ["eval", "classification", str(labelled), "--folds", "3", "--compute", "fp32", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert 0.5 < json.loads(result.stdout)[0]["accuracy"] <= 1
    result = runner.invoke(
        app, ["eval", "clustering", str(labelled), "--compute", "fp32", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert {"v_measure", "ari"} <= set(json.loads(result.stdout)[0])


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_cli_errors_are_one_line_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bad.tsv"
    bare.write_text("a cat\ta kitten\t4.5\na dog\n")
    assert "bad.tsv:2: 1 columns, expected 3" in _cli_error(["eval", "sts", str(bare)], capsys)
    folder = _beir(tmp_path / "beir", "q1\td1\t1\nq2\tnope\t1\n")
    assert "test.tsv:2: unknown document id 'nope'" in _cli_error(
        ["eval", "retrieval", str(folder)], capsys
    )
    one = tmp_path / "one.csv"
    one.write_text("text,label\ngood,pos\nfine,pos\n")
    assert "only one label ('pos')" in _cli_error(["eval", "classification", str(one)], capsys)
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    two = tmp_path / "two.csv"
    two.write_text("text,label\ngood,pos\nbad,neg\n")
    err = _cli_error(["eval", "classification", str(two), "--test", str(empty)], capsys)
    assert "empty.csv: no labelled texts" in err
    assert "use a .png or .html" in _cli_error(["eval", "suite", "--chart", "x.pdf"], capsys)
    assert "unknown suite task 'nope'" in _cli_error(["eval", "suite", "--task", "nope"], capsys)


# ---- a collection -----------------------------------------------------------------------------
def test_collection_modes_weights_and_filters(
    cli_embedder: Embedder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    embedder = cli_embedder
    from embedbox import Collection

    pairs = [p for p in sts_b("test")[:300] if p.score >= 4][:25]
    data_dir = tmp_path / "data"
    col = Collection.open("pairs", data_dir=data_dir, create=True, embedder=embedder)
    ids = [f"d{n}" for n in range(len(pairs))]
    col.add([p.b for p in pairs], ids=ids, metadatas=[{"half": n % 2} for n in range(len(pairs))])
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(json.dumps({"_id": f"q{n}", "text": p.a}) + "\n" for n, p in enumerate(pairs))
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{n}\td{n}\t1\n" for n in range(len(pairs)))
    )
    report = evaluate_collection(
        col,
        {f"q{n}": p.a for n, p in enumerate(pairs)},
        {f"q{n}": {f"d{n}": 1} for n in range(len(pairs))},
        weights=[(1.0, 1.0), (1.0, 0.0)],
        wheres=[None, {"half": 0}],
    )
    got = {r.setting.label(): r.metrics for r in report.results}
    assert len(got) == 8  # (semantic, keyword, hybrid x 2 weights) x 2 filters
    assert got["semantic"]["recall@10"] >= 0.9
    assert got["hybrid w=1,0"]["mrr@10"] == pytest.approx(got["semantic"]["mrr@10"])
    # Half the relevant documents are filtered out: recall can reach at most the other half.
    assert got['semantic where {"half": 0}']["recall@100"] <= 13 / 25 + 1e-9

    args = ["eval", "collection", "pairs", "--queries", str(queries), "--qrels", str(qrels)]
    args += ["--compute", "fp32"]
    args += ["--data-dir", str(data_dir), "--weights", "1,1", "--weights", "2,1", "--json"]
    cli_main(args)
    rows = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["weights"]) for r in rows] == [
        ("semantic", None), ("keyword", None), ("hybrid", [1.0, 1.0]), ("hybrid", [2.0, 1.0])
    ]  # fmt: skip
    qrels.write_text(qrels.read_text() + "q1\tmissing-doc\t1\n")
    err = _cli_error(args, capsys)
    assert f"qrels.tsv:{len(pairs) + 2}: unknown document id 'missing-doc'" in err
