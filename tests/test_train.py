"""`embedbox train`: each objective on a tiny random BERT and a few dozen real rows, the model
card, the output as a sentence-transformers folder, resume after `kill -9`, the registry.

The real all-MiniLM-L6-v2 runs (STS-B, rotten tomatoes) are in benchmarks/train.py.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from embedbox.datasets import rotten_tomatoes, sts_b
from embedbox.embed import DimensionsWarning, Embedder
from embedbox.errors import Conflict, InputError
from embedbox.tasks.train import TrainReport, train
from embedbox.tasks.train_card import write_card
from tests.tiny_models import build

# One thread: a tiny model gains nothing from two, and two thrash on a loaded machine.
FAST = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-4, "threads": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("bert", tmp_path_factory.mktemp("train-base") / "tiny")


@pytest.fixture(autouse=True)
def exact(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMBEDBOX_CPU_COMPUTE", "fp32")
    monkeypatch.setenv("EMBEDBOX_DATA_DIR", str(tmp_path / "data"))  # the model registry


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _pairs(n: int = 40) -> list[dict[str, object]]:
    close = [p for p in sts_b("train") if p.score >= 4.0]
    return [{"anchor": p.a, "positive": p.b} for p in close[:n]]


def _labels(n: int = 40) -> list[dict[str, object]]:
    data = rotten_tomatoes()
    fresh = [x for x in data if x.label == "fresh"][: n // 2]
    rotten = [x for x in data if x.label == "rotten"][: n // 2]
    return [
        {"text": x.text, "label": x.label} for pair in zip(fresh, rotten, strict=True) for x in pair
    ]


def test_pairs_run_card_parity_and_registry(tmp_path: Path, tiny: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from embedbox.cli import main

    data = _jsonl(tmp_path / "pairs.jsonl", _pairs())
    steps: list[tuple[int, int]] = []
    out = tmp_path / "out"
    report = train(str(tiny), data, out, progress=lambda d, t: steps.append((d, t)), **FAST)
    assert (report.objective, report.loss) == ("pairs", "MultipleNegativesRankingLoss")
    assert (report.train_examples, report.held_out) == (36, 4)
    assert set(report.before) == set(report.after) == {"mrr_at_10", "recall_at_10", "accuracy_at_1"}
    assert report.metric == "mrr_at_10" and report.steps == 5 and steps[-1] == (5, 5)
    assert report.recommended == (str(out) if report.better else str(tiny))
    assert report.history and report.history[-1]["step"] == 5
    assert not (out / "checkpoints").exists()  # removed once the model is saved
    saved = json.loads((out / "train_report.json").read_text())
    assert saved["after"] == report.after and saved["verdict"] == report.verdict
    card = (out / "README.md").read_text()
    for fact in (
        str(data),
        "36 training examples (pairs)",
        "MultipleNegativesRankingLoss",
        "| batch size | 8 |",
        "| learning rate | 0.0001",
        "| time |",
        "peak memory",
        f"| mrr_at_10 | {report.before['mrr_at_10']:.4f} | {report.after['mrr_at_10']:.4f} |",
        report.verdict,
    ):
        assert fact in card, fact
    texts = [r["anchor"] for r in _pairs(12)]
    ours = Embedder(str(out), compute="fp32").embed(texts)
    st = SentenceTransformer(str(out), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, st, atol=2e-5)
    assert not np.allclose(ours, Embedder(str(tiny), compute="fp32").embed(texts), atol=1e-3)
    main(["models", "register", "my-pairs", str(out)])
    np.testing.assert_allclose(Embedder("my-pairs", compute="fp32").embed(texts), ours, atol=1e-6)
    with pytest.raises(Conflict, match="already holds a model trained by embedbox"):
        train(str(tiny), data, out, **FAST)


@pytest.mark.parametrize("shape", ["scored-matryoshka", "labels-contrastive", "labels-triplet"])
def test_other_objectives(tmp_path: Path, tiny: Path, shape: str) -> None:
    if shape == "scored-matryoshka":
        data = tmp_path / "scored.csv"
        with data.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["sentence1", "sentence2", "score"])
            for p in sts_b("train")[:40]:
                w.writerow([p.a, p.b, p.score])  # 0-5: scaled to 0-1
        report = train(str(tiny), data, tmp_path / "out", matryoshka=(16, 8), **FAST)
        assert report.loss.startswith("MatryoshkaLoss(CoSENTLoss")
        assert report.matryoshka_dims == [32, 16, 8] and report.metric == "spearman"
        config = json.loads((tmp_path / "out" / "config_sentence_transformers.json").read_text())
        assert config["matryoshka_dims"] == [32, 16, 8]
        trained = Embedder(str(tmp_path / "out"), compute="fp32")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            trained.embed(["a cat"], dimensions=8)  # trained for it: no warning
        with pytest.warns(DimensionsWarning, match="down to 8"):
            trained.embed(["a cat"], dimensions=4)
        with pytest.warns(DimensionsWarning, match="not trained for shortened vectors"):
            Embedder(str(tiny), compute="fp32").embed(["a cat"], dimensions=8)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "labels.parquet"
    pq.write_table(pa.Table.from_pylist(_labels()), data)
    loss = shape.removeprefix("labels-")
    report = train(str(tiny), data, tmp_path / "out", label_loss=loss, pairs_per_text=2, **FAST)
    assert report.objective == "labels" and set(report.after) == {"accuracy", "macro_f1"}
    assert report.held_out >= 2 and report.train_examples + report.held_out == 40
    if loss == "triplet":
        assert report.loss.startswith("BatchHardTripletLoss") and report.train_rows == 36
    else:
        assert report.loss.startswith("CosineSimilarityLoss") and report.train_rows == 72


def test_bf16_training_and_its_choice(tmp_path: Path, tiny: Path) -> None:
    """precision="bf16" trains under autocast (noted in the report; the saved weights stay fp32
    and load as usual); "auto" is bf16 exactly where the CPU computes it natively."""
    from embedbox import hardware
    from embedbox.tasks import train_loop

    data = _jsonl(tmp_path / "pairs.jsonl", _pairs())
    report = train(str(tiny), data, tmp_path / "out", precision="bf16", **FAST)
    assert any("bf16 autocast" in note for note in report.notes)
    assert report.steps == 5 and set(report.after) == set(report.before)
    vec = Embedder(str(tmp_path / "out"), compute="fp32").embed(["a cat"])
    assert vec.dtype == np.float32 and np.isfinite(vec).all()
    assert train_loop.uses_bf16("auto") is hardware.cpu_has_fast_bf16()
    assert not train_loop.uses_bf16("fp32") and train_loop.uses_bf16("bf16")
    with pytest.raises(InputError, match="precision must be auto, fp32 or bf16"):
        train(str(tiny), data, tmp_path / "bad", precision="fp16", **FAST)


def test_mined_hard_negatives_and_the_cli(
    tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedbox.cli import main

    data = _jsonl(tmp_path / "pairs.jsonl", _pairs())
    args = ["train", str(tiny), "--data", str(data), "-o", str(tmp_path / "out"), "--json"]
    fast = ["--epochs", "1", "--batch-size", "8", "--lr", "1e-4", "--threads", "1"]
    main([*args, "--mine-negatives", *fast])
    report = json.loads(capsys.readouterr().out)
    assert report["notes"][0].startswith("hard negatives mined with the base model: ")
    assert report["steps"] == 5 and report["before"] and report["after"]
    assert report["verdict"].startswith("The fine-tuned model is ")


GATED = """
import sys, time
from pathlib import Path
from transformers import TrainerCallback
from embedbox.tasks.train import train

class Gate(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        Path(sys.argv[4]).write_text(str(state.global_step))  # checkpoint complete
        while True:
            time.sleep(1)

train(sys.argv[1], sys.argv[2], sys.argv[3], epochs=2, batch_size=8, learning_rate=1e-4,
      threads=1, callbacks=[Gate()])
"""


@pytest.mark.slow  # real subprocesses killed mid-run
def test_a_killed_run_resumes_from_its_checkpoint(tmp_path: Path, tiny: Path) -> None:
    data = _jsonl(tmp_path / "pairs.jsonl", _pairs())
    out, marker = tmp_path / "out", tmp_path / "saved"
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env["OMP_NUM_THREADS"] = "1"
    child = subprocess.Popen(
        [sys.executable, "-c", GATED, str(tiny), str(data), str(out), str(marker)], env=env
    )
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert child.poll() is None, "the training child exited early"
            assert time.monotonic() < deadline, "the training child wrote no checkpoint"
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert marker.read_text() == "5"  # after epoch 1 of 2
    assert (out / "checkpoints" / "checkpoint-5" / "trainer_state.json").is_file()
    report = train(str(tiny), data, out, epochs=2, batch_size=8, learning_rate=1e-4, threads=1)
    assert report.resumed_from_step == 5 and report.steps == 10 and report.epochs == 2.0
    assert [int(h["step"]) for h in report.history] == [5, 10]
    assert "resumed from step 5" in (out / "README.md").read_text()


def test_a_worse_model_is_called_worse_and_the_base_kept(tmp_path: Path, tiny: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    report = TrainReport(
        base="all-MiniLM-L6-v2",
        output=str(out),
        objective="scored",
        loss="CoSENTLoss",
        train_examples=5174,
        train_rows=5174,
        held_out=575,
        held_out_source="575 of 5749 examples held out",
        metric="spearman",
        before={"spearman": 0.8672, "pearson": 0.87},
        after={"spearman": 0.8117, "pearson": 0.82},
        better=False,
        recommended="all-MiniLM-L6-v2",
        steps=180,
        epochs=1.0,
        seconds=780.0,
        seconds_per_epoch=780.0,
        peak_memory_mib=1500.0,
        resumed_from_step=None,
        kept_step=None,
        matryoshka_dims=[],
        settings={
            "epochs": 1,
            "batch_size": 32,
            "learning_rate": 2e-5,
            "warmup": 0.1,
            "evals_per_epoch": 1,
            "keep": "last",
            "patience": None,
            "seed": 0,
        },
        history=[],
        notes=[],
    )
    assert report.verdict == (
        "The fine-tuned model is not better than all-MiniLM-L6-v2 on the held-out split "
        "(spearman 0.8117 vs 0.8672): keep using all-MiniLM-L6-v2."
    )
    card = write_card(out, report, "sts.csv").read_text()
    assert f"**{report.verdict}**" in card
    assert "| spearman | 0.8672 | 0.8117 | -0.0555 |" in card


# ---- bad data: one line, naming the file and the line ---------------------------------------
BAD = [
    ("empty.jsonl", "", "no records"),
    ("one-label.jsonl", '{"text": "a", "label": "x"}\n' * 5, "needs at least two different"),
    (
        "lonely-label.jsonl",
        '{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n{"text": "c", "label": "y"}\n',
        ":3: label 'y' has only this one example",
    ),
    (
        "missing.jsonl",
        '{"anchor": "a", "positive": "b"}\n\n{"anchor": "c"}\n',
        ":3: no 'positive' (the positive",
    ),
    (
        "blank.jsonl",
        '{"anchor": "a", "positive": "b"}\n{"anchor": "c", "positive": "  "}\n',
        ":2: 'positive' is blank",
    ),
    (
        "range.csv",
        "sentence1,sentence2,score\na,b,1\nc,d,7.5\n",
        ":3: score 7.5 is above 5",
    ),
    (
        "negative.csv",
        "sentence1,sentence2,score\na,b,-1\nc,d,3\n",
        ":2: score -1 is negative",
    ),
    (
        "nan.jsonl",
        '{"sentence1": "a", "sentence2": "b", "score": "high"}\n',
        ":1: score 'high' is not a number",
    ),
    (
        "mixed.jsonl",
        '{"anchor": "a", "positive": "b", "negative": "c"}\n{"anchor": "d", "positive": "e"}\n',
        ":2: no 'negative' here but the first record",
    ),
    (
        "mixed2.jsonl",
        '{"anchor": "a", "positive": "b"}\n{"anchor": "d", "positive": "e", "negative": "f"}\n',
        ":2: has a 'negative' but the first record",
    ),
    ("shape.jsonl", '{"title": "a", "body": "b"}\n', ":1: cannot tell what to train on"),
    ("number.jsonl", '{"text": 5, "label": "x"}\n', ":1: 'text' is int, not text"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_data_names_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    from embedbox.tasks.train_data import read_examples

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_examples(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


def test_bad_data_from_the_cli_is_one_line(
    tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedbox.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("sentence1,sentence2,score\na,b,1\nc,d,9\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(tiny), "--data", str(bad), "-o", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bad}:3: score 9 is above 5" in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    good = _jsonl(tmp_path / "pairs.jsonl", _pairs(10))
    with pytest.raises(Conflict, match="not an embedbox training output"):
        train(str(tiny), good, foreign)


def test_registry_rules(tmp_path: Path, tiny: Path) -> None:
    from embedbox.errors import ModelNotFound, NotFound
    from embedbox.models import resolve
    from embedbox.models.registry import register, registered, unregister

    assert register("tiny", tiny) == tiny.resolve()
    assert resolve("tiny") == (tiny.resolve(), None)
    assert registered()["tiny"]["path"] == str(tiny.resolve())
    with pytest.raises(Conflict, match="catalog model"):
        register("all-MiniLM-L6-v2", tiny)
    with pytest.raises(InputError, match="invalid model name"):
        register("../x", tiny)
    with pytest.raises(NotFound, match="no model folder"):
        register("nowhere", tmp_path / "missing")
    other = build("bert", tmp_path / "other", seed=3)
    with pytest.raises(Conflict, match="already registered"):
        register("tiny", other)
    assert register("tiny", other, force=True) == other.resolve()
    unregister("tiny")
    with pytest.raises(ModelNotFound, match="no registered model"):
        resolve("tiny")


@pytest.mark.parametrize("per_text", [1, 2, 3])
def test_setfit_pairs_are_half_positive_whatever_the_count(per_text: int) -> None:
    from embedbox.tasks.train_data import Examples
    from embedbox.tasks.train_loop import contrastive_pairs

    rows = rotten_tomatoes()[:40]
    examples = Examples(
        "labels", {"text": [r.text for r in rows], "label": [str(r.label) for r in rows]}, "rt"
    )
    pairs = contrastive_pairs(examples, per_text, seed=0)
    labels = {r.text: str(r.label) for r in rows}
    assert len(pairs["label"]) == 40 * per_text
    for a, b, score in zip(pairs["sentence1"], pairs["sentence2"], pairs["label"], strict=True):
        assert score == float(labels[a] == labels[b])
    assert sum(pairs["label"]) == len(pairs["label"]) / 2  # alternating, not all positive
