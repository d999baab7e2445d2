"""embedbox's numpy metrics equal the reference implementations on the same inputs:
pytrec_eval (trec_eval, what MTEB and BEIR use) for ranking, scipy for correlations,
scikit-learn for clustering."""

from __future__ import annotations

import random

import numpy as np
import pytest
import pytrec_eval
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import adjusted_rand_score, v_measure_score

from embedbox.evaluation import metrics

KS = (1, 3, 10, 100)


def _random_run(seed: int) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Graded qrels (0-3, some judged non-relevant) and a run with tied scores and relevant
    documents missing from it, over 40 queries and 300 documents."""
    rng = random.Random(seed)
    docs = [f"d{n}" for n in range(300)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(40):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        qrels[qid][judged[0]] = max(1, qrels[qid][judged[0]])  # at least one relevant
        retrieved = rng.sample(docs, rng.randint(0, 150))
        retrieved += [d for d in judged if rng.random() < 0.6]
        # Scores on a coarse grid, so ties are common and trec_eval's tie order matters.
        run[qid] = {d: round(rng.random() * 20) / 20 for d in retrieved}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_equal_pytrec_eval(seed: int) -> None:
    qrels, run = _random_run(seed)
    ours = metrics.run_metrics(qrels, run, KS)
    measures = {f"ndcg_cut.{','.join(map(str, KS))}", f"map_cut.{','.join(map(str, KS))}"}
    measures |= {f"recall.{','.join(map(str, KS))}"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    for q in qrels:  # pytrec_eval leaves out queries the run does not mention
        per_query.setdefault(q, {})
    for k in KS:
        for ours_name, trec_name in (
            ("ndcg", "ndcg_cut"),
            ("map", "map_cut"),
            ("recall", "recall"),
        ):
            want = np.mean([per_query[q].get(f"{trec_name}_{k}", 0.0) for q in qrels])
            assert ours[f"{ours_name}@{k}"] == pytest.approx(want, abs=1e-12), (ours_name, k)
        # MRR@k: trec_eval's recip_rank on the run cut to its top k (in trec_eval's order).
        cut = {
            q: {d: s for d, s in run[q].items() if d in metrics.trec_order(run[q])[:k]} for q in run
        }
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut)
        want_rr = np.mean([rr.get(q, {}).get("recip_rank", 0.0) for q in qrels])
        assert ours[f"mrr@{k}"] == pytest.approx(want_rr, abs=1e-12), k


def test_trec_order_breaks_ties_by_descending_id() -> None:
    assert metrics.trec_order({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]


def test_ranking_metrics_by_hand() -> None:
    qrels = {"q": {"a": 2, "b": 1, "x": 0}}
    ranking = {"q": ["x", "a", "z", "b"]}
    got = metrics.ranking_metrics(qrels, ranking, (1, 2, 4))
    assert got["recall@1"] == 0 and got["recall@2"] == 0.5 and got["recall@4"] == 1
    assert got["mrr@1"] == 0 and got["mrr@4"] == 0.5
    assert got["map@4"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    ideal = 2 + 1 / np.log2(3)
    assert got["ndcg@4"] == pytest.approx((2 / np.log2(3) + 1 / np.log2(5)) / ideal)
    with pytest.raises(ValueError, match="no query has a relevant document"):
        metrics.ranking_metrics({"q": {"a": 0}}, ranking)


def test_correlations_equal_scipy() -> None:
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=300), 1)  # ties
    y = x + rng.normal(size=300)
    assert metrics.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert metrics.pearson(x, y) == pytest.approx(pearsonr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_clustering_scores_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, size=200)
    pred = np.where(rng.random(200) < 0.7, true, rng.integers(0, 5, size=200))
    assert metrics.v_measure(true, pred) == pytest.approx(v_measure_score(true, pred), abs=1e-12)
    assert metrics.adjusted_rand(true, pred) == pytest.approx(
        adjusted_rand_score(true, pred), abs=1e-12
    )
    one = np.zeros(10, dtype=int)
    assert metrics.adjusted_rand(one, one) == adjusted_rand_score(one, one) == 1.0
    assert metrics.v_measure(one, one) == v_measure_score(one, one) == 1.0
