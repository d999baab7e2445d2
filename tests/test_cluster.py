"""Clustering on real text with known groups: gensim's mini_newsgroup (atheism vs space)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from embedbox import Embedder, InputError
from embedbox.cli import common
from embedbox.cli import main as cli_main
from embedbox.datasets import mini_newsgroup
from embedbox.tasks.cluster import (
    ClusterOptions,
    choose_k,
    cluster,
    cluster_labels,
    community_labels,
)


@pytest.fixture(scope="module")
def news(embedder: Embedder) -> tuple[np.ndarray, list[str], list[str]]:
    """All 200 posts, cut to their first 600 characters to keep the test quick."""
    posts = mini_newsgroup()
    texts = [p.text[:600] for p in posts]
    return embedder.embed(texts, truncate=False), texts, [p.label for p in posts]


def test_kmeans_recovers_newsgroups(news: tuple[np.ndarray, list[str], list[str]]) -> None:
    x, texts, y = news
    result = cluster(x, texts, ClusterOptions(k=2))
    ari = adjusted_rand_score(y, result.labels)
    rng = np.random.default_rng(0)
    chance = adjusted_rand_score(y, rng.integers(0, 2, len(y)))
    print(f"\nmini_newsgroup k-means k=2: ARI {ari:.3f} (random assignment {chance:.3f})")
    assert ari > 0.7 and abs(chance) < 0.1
    assert sorted(c.size for c in result.clusters) == sorted(np.bincount(result.labels).tolist())
    by_group = {}
    for info in result.clusters:
        groups = {y[i] for i in info.representatives}
        assert len(groups) == 1  # representatives come from one newsgroup
        by_group[groups.pop()] = info.keywords
    assert "space" in by_group["sci.space"]
    assert {"god", "religion", "atheism", "atheists", "bible"} & set(by_group["alt.atheism"])


def test_k_chosen_by_silhouette(news: tuple[np.ndarray, list[str], list[str]]) -> None:
    x, _, y = news
    best, scores = choose_k(x, (2, 6))
    assert set(scores) == {2, 3, 4, 5, 6} and best == max(scores, key=scores.__getitem__)
    assert best == 2
    assert adjusted_rand_score(y, cluster_labels(x)) > 0.7


def test_other_methods(news: tuple[np.ndarray, list[str], list[str]]) -> None:
    x, _, y = news
    ward = cluster_labels(x, ClusterOptions("agglomerative", k=2, linkage="ward"))
    assert adjusted_rand_score(y, ward) > 0.6
    many = cluster_labels(x, ClusterOptions("agglomerative", distance_threshold=0.5))
    assert len(set(many.tolist())) > 2
    hdb = cluster_labels(x, ClusterOptions("hdbscan", min_cluster_size=5))
    assert hdb.min() >= -1 and hdb.max() >= 1
    kept = hdb >= 0
    assert adjusted_rand_score(np.array(y)[kept], hdb[kept]) > 0.2
    com = community_labels(x, threshold=0.45, min_size=5)
    for c in set(com.tolist()) - {-1}:
        members = np.flatnonzero(com == c)
        assert len(members) >= 5
        majority = max({y[i] for i in members}, key=[y[i] for i in members].count)
        assert np.mean([y[i] == majority for i in members]) >= 0.8


def test_community_detection_is_exact_on_planted_groups() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 64))
    x = np.concatenate([c + 0.1 * rng.standard_normal((20, 64)) for c in centres])
    x = np.concatenate([x, rng.standard_normal((5, 64))])  # 5 loners
    labels = community_labels(x.astype(np.float32), threshold=0.8, min_size=10, chunk=7)
    assert (labels[-5:] == -1).all()
    assert adjusted_rand_score(np.repeat([0, 1, 2], 20), labels[:60]) == 1.0


def test_bad_options() -> None:
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(InputError, match="k must be between 2"):
        cluster_labels(x, ClusterOptions(k=9))
    with pytest.raises(InputError, match="unknown cluster method"):
        cluster_labels(x, ClusterOptions("spectral"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least 2 items"):
        cluster_labels(x[:1])


def test_cli_cluster_file_json(
    tmp_path: Path,
    news: tuple[np.ndarray, list[str], list[str]],
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(common._embedders, ("all-MiniLM-L6-v2", "auto", None), embedder)
    _, texts, y = news
    path = tmp_path / "posts.jsonl"
    with path.open("w") as fh:
        for i in range(0, 200, 4):
            fh.write(json.dumps({"id": f"p{i}", "body": texts[i], "group": y[i]}) + "\n")
    cli_main(
        ["cluster", str(path), "--text-field", "body", "--method", "kmeans", "--k", "2", "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert out["n_clusters"] == 2 and len(out["items"]) == 50
    assert {it["id"] for it in out["items"]} == {f"p{i}" for i in range(0, 200, 4)}
    assert sum(c["size"] for c in out["clusters"]) == 50
    assert all(c["keywords"] and c["representatives"][0]["text"] for c in out["clusters"])
    truth = {f"p{i}": y[i] for i in range(0, 200, 4)}
    ari = adjusted_rand_score(
        [truth[it["id"]] for it in out["items"]], [it["cluster"] for it in out["items"]]
    )
    assert ari > 0.6
    with pytest.raises(SystemExit):
        cli_main(["cluster", str(path), "--text-field", "body", "--method", "spectral"])
    assert "unknown --method 'spectral'" in capsys.readouterr().err
