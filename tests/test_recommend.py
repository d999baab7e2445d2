"""Recommendations on arrays and on a collection, with the real MiniLM model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedbox import Embedder, InputError, NotFound
from embedbox.store.collection import Collection
from embedbox.tasks.recommend import (
    RecommendOptions,
    mmr,
    profile_vector,
    recency_weights,
    recommend,
    recommend_vectors,
)

TOPICS = {
    "space": [
        "NASA launched a new telescope to study distant galaxies.",
        "The astronauts docked with the space station after a long flight.",
        "A rocket carried the Mars rover into orbit.",
        "Astronomers discovered a planet orbiting a nearby star.",
        "The lunar lander touched down near the Moon's south pole.",
    ],
    "cooking": [
        "Knead the dough and let the bread rise overnight.",
        "Simmer the tomato sauce with garlic and basil.",
        "This chocolate cake recipe needs only five ingredients.",
        "Roast the vegetables with olive oil and rosemary.",
        "Whisk the eggs before folding them into the batter.",
    ],
    "football": [
        "The striker scored a hat-trick in the cup final.",
        "The goalkeeper saved a penalty in extra time.",
        "The coach was sacked after ten league defeats.",
        "Fans celebrated the championship title in the streets.",
        "The midfielder signed a four-year contract with the club.",
    ],
    "finance": [
        "Stocks rallied after the central bank cut interest rates.",
        "The company's quarterly earnings beat analyst forecasts.",
        "Bond yields rose as inflation data surprised investors.",
        "The startup raised fifty million dollars in venture funding.",
        "Oil prices slumped on fears of weaker demand.",
    ],
}


@pytest.fixture(scope="module")
def corpus(embedder: Embedder) -> tuple[list[str], list[str], np.ndarray]:
    texts = [t for group in TOPICS.values() for t in group]
    topics = [name for name, group in TOPICS.items() for _ in group]
    return texts, topics, embedder.embed(texts)


@pytest.fixture()
def col(tmp_path: Path, embedder: Embedder, corpus: tuple[list[str], list[str], np.ndarray]):  # type: ignore[no-untyped-def]
    texts, topics, _ = corpus
    c = Collection.open("news", data_dir=tmp_path, create=True, embedder=embedder)
    c.add(
        texts,
        ids=[f"d{i}" for i in range(len(texts))],
        metadatas=[{"topic": t, "year": 2000 + i} for i, t in enumerate(topics)],
    )
    yield c
    c.close()


def test_more_like_this_on_arrays(corpus: tuple[list[str], list[str], np.ndarray]) -> None:
    _, topics, x = corpus
    recs = recommend_vectors(x, liked=[0, 2], options=RecommendOptions(k=3))
    assert [topics[r.index] for r in recs] == ["space"] * 3
    assert {0, 2}.isdisjoint(r.index for r in recs)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    seen = recommend_vectors(
        x, liked=[0], exclude=[r.index for r in recs], options=RecommendOptions(k=2)
    )
    assert {r.index for r in seen}.isdisjoint({0, *(r.index for r in recs)})


def test_dislikes_push_items_down(corpus: tuple[list[str], list[str], np.ndarray]) -> None:
    texts, topics, x = corpus
    # "bread rises" and "rocket carries rover" are both liked; disliking space leaves cooking
    liked = [texts.index("Knead the dough and let the bread rise overnight."), 2]
    both = recommend_vectors(x, liked, options=RecommendOptions(k=6))
    assert {"space", "cooking"} <= {topics[r.index] for r in both}
    no_space = recommend_vectors(
        x, liked, disliked=[0, 1], options=RecommendOptions(k=3, negative_weight=1.0)
    )
    assert [topics[r.index] for r in no_space] == ["cooking"] * 3


def test_recency_weights_and_profile(corpus: tuple[list[str], list[str], np.ndarray]) -> None:
    _, topics, x = corpus
    np.testing.assert_allclose(recency_weights(3, 1.0), [0.25, 0.5, 1.0])
    np.testing.assert_allclose(recency_weights(2, None), [1.0, 1.0])
    history = [10, 11, 12, 0]  # football long ago, space most recently
    recent = recommend_vectors(x, history, options=RecommendOptions(k=2, half_life=0.5))
    flat = recommend_vectors(x, history, options=RecommendOptions(k=2))
    assert [topics[r.index] for r in recent] == ["space", "space"]
    assert [topics[r.index] for r in flat] == ["football", "football"]
    q = profile_vector(x[[0]])
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InputError, match="cancel out"):
        profile_vector(x[[0]], x[[0]], negative_weight=1.0)


def test_mmr_diversifies() -> None:
    base = np.array([[1.0, 0.0, 0.0]], np.float32)
    cands = np.array([[1, 0.01, 0], [1, 0.02, 0], [0.7, 0.7, 0], [0.7, 0, 0.7]], np.float32)
    assert mmr(base[0], cands, 3, 1.0) == [0, 1, 2]  # pure relevance keeps the near-copies
    picked = mmr(base[0], cands, 3, 0.3)
    assert picked[0] == 0 and 1 not in picked


def test_collection_recommend(
    col: Collection, corpus: tuple[list[str], list[str], np.ndarray]
) -> None:
    recs = recommend(col, like=["d10", "d11"], options=RecommendOptions(k=3))
    assert [r.metadata["topic"] for r in recs] == ["football"] * 3
    assert {"d10", "d11"}.isdisjoint(r.id for r in recs)
    assert all(r.text for r in recs)
    seen = recommend(
        col, like=["d10"], exclude=[r.id for r in recs], options=RecommendOptions(k=20)
    )
    assert {r.id for r in seen}.isdisjoint({"d10", *(r.id for r in recs)})
    assert len(seen) == 20 - 1 - 3  # every doc but the input and the seen ones
    filtered = recommend(
        col, like=["d10"], where={"topic": "finance"}, options=RecommendOptions(k=3)
    )
    assert [r.metadata["topic"] for r in filtered] == ["finance"] * 3
    recent = recommend(
        col, history=["d10", "d11", "d0"], options=RecommendOptions(k=2, half_life=0.5)
    )
    assert [r.metadata["topic"] for r in recent] == ["space", "space"]
    diverse = recommend(col, like=["d0"], options=RecommendOptions(k=4, diversity=0.3))
    plain = recommend(col, like=["d0"], options=RecommendOptions(k=4))
    assert len({r.metadata["topic"] for r in diverse}) > len({r.metadata["topic"] for r in plain})


def test_unknown_ids_are_listed(col: Collection) -> None:
    with pytest.raises(NotFound, match=r"'nope'.*'gone'|'gone'.*'nope'"):
        recommend(col, like=["d1", "nope"], unlike=["gone"])
    with pytest.raises(InputError, match="at least one liked"):
        recommend(col, unlike=["d1"])
    with pytest.raises(InputError, match="diversity"):
        recommend(col, like=["d1"], options=RecommendOptions(diversity=2))


def test_cli_recommend(col: Collection, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from embedbox.cli import main as cli_main

    cli_main(
        [
            "recommend",
            "news",
            "--data-dir",
            str(tmp_path),
            "--like",
            "d5",
            "--like",
            "d6",
            "--unlike",
            "d0",
            "-k",
            "3",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert [r["metadata"]["topic"] for r in out["results"]] == ["cooking"] * 3
    with pytest.raises(SystemExit) as info:
        cli_main(["recommend", "news", "--data-dir", str(tmp_path), "--like", "missing-id"])
    assert info.value.code == 2
    assert "missing-id" in capsys.readouterr().err
