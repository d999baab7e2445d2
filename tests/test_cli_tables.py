"""Every table the CLI prints fits 80 columns (the width of a pipe) with its ids, scores and
model names whole; long texts are cut with … instead. No pretrained model: stored vectors, and
a tiny random BERT (tests/tiny_models.py) where texts are embedded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedbox import Collection, catalog
from tests.cli_runner import Result, run_cli
from tests.tiny_models import build

LONG = "the quick brown fox jumps over the lazy dog near the river bank " * 4
IDS = [f"report-2001-{i:02d}.md:12" for i in range(6)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build("bert", tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture
def data(tmp_path: Path) -> str:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(6, 16)).astype(np.float32)
    with Collection.open(
        "reports", "my-vectors", data_dir=tmp_path, create=True, kind="vector", dim=16
    ) as col:
        metas = [{"source": f"archive/2001/reports/{i}.md", "year": 2001} for i in range(6)]
        col.add([f"{i} {LONG}" for i in range(6)], ids=IDS, metadatas=metas, vectors=vectors)
    return str(tmp_path)


def fits(out: Result) -> str:
    assert out.code == 0, out.stderr
    wide = [line for line in out.stdout.splitlines() if len(line) > 80]
    assert not wide, "\n".join(wide)
    return out.stdout


def test_search_keeps_rank_score_and_id(data: str) -> None:
    text = fits(run_cli("search", "reports", "fox", "--mode", "keyword", "--data-dir", data,
                        columns=80))  # fmt: skip
    header = next(line for line in text.splitlines() if "score" in line)
    assert "#" in header and "id" in header and "text" in header
    for i in IDS:
        assert i in text
    assert "…" in text  # the text is cut, not the columns


def test_recommend_and_cluster_tables(data: str) -> None:
    text = fits(run_cli("recommend", "reports", "--like", IDS[0], "--data-dir", data, columns=80))
    assert all(i in text for i in IDS[1:]) and "score" in text
    text = fits(run_cli("cluster", "reports", "--k", "2", "--data-dir", data, columns=80))
    assert "representative" in text


def test_collection_list_fits(data: str) -> None:
    assert "reports" in fits(run_cli("collection", "list", "--data-dir", data, columns=80))


def test_models_shows_whole_names_and_no_token_limit_where_none_applies() -> None:
    text = fits(run_cli("models", columns=80))
    for spec in catalog.CATALOG:
        assert spec.name in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert rows["glove-6b-50d"].split("│")[4].strip() == "-"
    assert rows["efficientnet-lite0"].split("│")[4].strip() == "-"
    assert rows["all-MiniLM-L6-v2"].split("│")[4].strip() == "256"
    listed = {r["name"]: r for r in json.loads(run_cli("models", "--json").stdout)}
    assert listed["glove-6b-50d"]["max_tokens"] is None
    assert listed["all-MiniLM-L6-v2"]["max_tokens"] == 256


def test_embed_similarity_and_classify_tables(tiny: str) -> None:
    text = fits(run_cli("embed", LONG, "a short one", "-m", tiny, columns=80))
    assert "vector (first 6)" in text and "…" in text
    text = fits(run_cli("similarity", LONG, "a short one", "-m", tiny, columns=80))
    assert "1.000" in text
    args = ("classify", "zero-shot", LONG, "--label", "nature", "--label", "money", "-m", tiny)
    text = fits(run_cli(*args, columns=80))
    assert "score" in text and "…" in text
