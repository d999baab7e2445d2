"""Word vectors: GloVe 6B 50d from its package, analogies, evaluation, word2vec/FastText training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embedbox.cli import main
from embedbox.cli.common import app
from embedbox.datasets import gensim_test_file
from embedbox.errors import InputError
from embedbox.models.words import load, save, train
from embedbox.words import OutOfVocabulary, WordVectors, load_words

pytestmark = pytest.mark.model

runner = CliRunner()


@pytest.fixture(scope="module")
def glove() -> WordVectors:
    return load_words("glove-6b-50d")


def test_glove_loads_whole_vocabulary_normalised(glove: WordVectors) -> None:
    assert len(glove) == 400_000 and glove.dim == 50
    assert glove.words[:3] == ["the", ",", "."]
    norms = np.linalg.norm(glove.vectors[:1000], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    assert "King" in glove  # GloVe 6B is uncased: lookups are lower-cased


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_king_minus_man_plus_woman_is_queen(glove: WordVectors, method: str) -> None:
    answers = glove.analogy("man", "king", "woman", k=5, method=method)  # type: ignore[arg-type]
    assert answers[0].word == "queen"
    assert not {"man", "king", "woman"} & {a.word for a in answers}
    assert answers[0].score > answers[1].score


def test_capital_analogy_and_similar_words(glove: WordVectors) -> None:
    assert glove.analogy("france", "paris", "germany", k=1)[0].word == "berlin"
    near = [a.word for a in glove.similar("frog", k=10)]
    assert "frog" not in near and "toad" in near
    assert glove.similarity("cat", "dog") > glove.similarity("cat", "economics") + 0.4


def test_odd_one_out_and_phrases(glove: WordVectors) -> None:
    assert glove.odd_one_out(["apple", "banana", "mango", "car"]).word == "car"
    vec = glove.phrase_vector("new york")
    assert vec.shape == (50,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    assert {"chicago", "boston"} <= {a.word for a in glove.similar("new york", k=5)}
    assert glove.embed(["ice cream", "cake"]).shape == (2, 50)


def test_out_of_vocabulary_suggests_spellings(glove: WordVectors) -> None:
    with pytest.raises(OutOfVocabulary, match="did you mean queen"):
        glove.vector("queeen")
    with pytest.raises(InputError, match="at least three"):
        glove.odd_one_out(["a", "b"])
    with pytest.raises(InputError, match="method"):
        glove.analogy("a", "b", "c", method="cos")  # type: ignore[arg-type]


def test_analogy_sections_accuracy(glove: WordVectors) -> None:
    sections = ["capital-common-countries", "family"]
    report = glove.evaluate_analogies(sections=sections)
    scores = {s.section: s for s in report.sections}
    # Measured with this implementation (same protocol as gensim: top 300k words, inputs excluded).
    assert scores["capital-common-countries"].total == 506
    assert scores["capital-common-countries"].accuracy == pytest.approx(0.792, abs=0.01)
    assert scores["family"].accuracy == pytest.approx(0.690, abs=0.01)
    assert report.part(True).total == 1012 and report.part(False).total == 0
    with pytest.raises(InputError, match="unknown analogy section"):
        glove.evaluate_analogies(sections=["capitals"])


def test_word_similarity_spearman(glove: WordVectors) -> None:
    ws = glove.evaluate_similarity(dataset="wordsim353")
    sl = glove.evaluate_similarity(dataset="simlex999")
    assert ws.pairs == 353 and ws.spearman == pytest.approx(0.503, abs=0.01)
    assert sl.pairs == 999 and sl.spearman == pytest.approx(0.265, abs=0.01)


def test_train_word2vec_save_and_reload(tmp_path: Path) -> None:
    corpus = gensim_test_file("lee_background.cor")
    seen: list[tuple[int, int]] = []
    wv, model = train(
        corpus, dim=32, epochs=5, min_count=3, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (5, 5) and len(seen) == 5
    assert wv.dim == 32 and "australia" in wv and len(wv) > 1000
    folder = save(model, tmp_path / "w2v")
    text = save(wv, tmp_path / "w2v.txt")
    for path in (folder, text):
        again = load(path)
        assert again.words == wv.words
        assert np.allclose(again.vectors, wv.vectors, atol=1e-5)
    binary = load(save(model, tmp_path / "w2v.bin"))
    assert np.allclose(binary.vectors, wv.vectors, atol=1e-6)


def test_fasttext_answers_unknown_words_with_subwords(tmp_path: Path) -> None:
    wv, model = train(gensim_test_file("lee_background.cor"), kind="fasttext", dim=24, epochs=3)
    assert "governmentt" not in wv
    vec = wv.vector("governmentt")  # built from character n-grams
    assert vec.shape == (24,) and float(vec @ wv.vector("government")) > 0.5
    path = save(model, tmp_path / "ft.bin")
    again = load(path)
    assert again.subword is not None
    assert np.allclose(again.vector("governmentt"), vec, atol=1e-4)


def test_glove_text_file_and_pickle_refusal(tmp_path: Path) -> None:
    small = load(gensim_test_file("test_glove.txt"))
    assert small.dim == len(small.vectors[0]) and len(small) > 0
    pickled = tmp_path / "vectors.kv"
    pickled.write_bytes(b"\x80\x04not really")
    with pytest.raises(InputError, match="allow_pickle"):
        load(pickled)


def test_cli_analogy_json_and_eval() -> None:
    result = runner.invoke(app, ["words", "analogy", "man", "king", "woman", "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)
    assert answers[0]["word"] == "queen" and set(answers[0]) == {"word", "score"}
    result = runner.invoke(app, ["words", "eval", "--section", "family", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["analogies"][0]["section"] == "family"
    assert report["analogies"][0]["accuracy"] == pytest.approx(0.690, abs=0.01)
    assert {r["dataset"] for r in report["similarity"]} == {"wordsim353", "simlex999"}


def test_cli_odd_one_out_and_unknown_word(capsys: pytest.CaptureFixture[str]) -> None:
    result = runner.invoke(app, ["words", "odd-one-out", "apple", "banana", "pear", "tractor"])
    assert result.exit_code == 0 and "tractor" in result.stdout
    with pytest.raises(SystemExit) as exit_info:
        main(["words", "similar", "qweenx"])
    assert exit_info.value.code != 0
    assert "not in the vocabulary" in capsys.readouterr().err
