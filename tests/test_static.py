"""Static models: distilled from a sentence model in model2vec's format, read by model2vec to the
same vectors, and usable wherever a model is (library, collections, CLI, server). A tiny random
BERT keeps these fast; benchmarks and docs/eval.md measure the real distilled MiniLM."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from embedbox import Collection, Embedder, InputError
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread
from embedbox.tasks.distill import distill
from tests.cli_runner import run_cli
from tests.tiny_models import build

TEXTS = ["A cat sleeps on the mat.", "Stocks fell on Monday.", "qwxz", "A kitten naps."]


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tiny = build("bert", tmp_path_factory.mktemp("m") / "tiny")
    out = tmp_path_factory.mktemp("s") / "static"
    report = distill(Embedder(str(tiny), compute="fp32"), out, dims=16)
    assert report.dims == 16 and report.vocabulary > 30_000
    return out


def test_vectors_equal_model2vecs(static: Path) -> None:
    from model2vec import StaticModel

    ours = Embedder(str(static)).embed(TEXTS)
    theirs = StaticModel.from_pretrained(str(static)).encode(TEXTS)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert ours.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_it_loads_like_any_model(static: Path, tmp_path: Path) -> None:
    emb = Embedder(str(static))
    assert emb.describe()["backend"] == "static" and emb.dim == 16
    col = Collection.open("s", str(static), data_dir=tmp_path, create=True)
    col.add(TEXTS, ids=[f"t{i}" for i in range(4)])
    assert col.search("a sleeping cat", k=1)[0].id in {f"t{i}" for i in range(4)}
    out = run_cli("embed", *TEXTS[:2], "--model", str(static), "--json")
    assert out.code == 0, out.stderr
    settings = ServerSettings(models=(str(static),), data_dir=tmp_path / "srv")
    with ServerThread(create_app(settings)) as url:
        r = httpx.post(url + "/v1/embeddings", json={"input": TEXTS[:2], "model": str(static)})
        assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 16


def test_distill_refuses_a_used_folder_and_bad_dims(static: Path, tmp_path: Path) -> None:
    emb = Embedder(str(static))  # any embedder: the checks come first
    with pytest.raises(InputError, match="not empty"):
        distill(emb, static)
    with pytest.raises(InputError, match="dims must be between 2 and 16"):
        distill(emb, tmp_path / "new", dims=64)
