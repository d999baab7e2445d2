"""Paraphrase mining / dedup: exact vs ANN agree, memory stays bounded, collections drop/tag."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from embedbox import Embedder, InputError
from embedbox.store.collection import Collection
from embedbox.tasks.mining import (
    MiningOptions,
    dedup_collection,
    duplicate_groups,
    duplicates_to_drop,
    mine_pairs,
)

SENTENCES = [
    "The cat sat on the mat.",
    "A cat was sitting on the mat.",
    "Stock markets fell sharply on Monday.",
    "Shares dropped steeply at the start of the week.",
    "I love baking sourdough bread at home.",
    "The rocket launched from Cape Canaveral.",
    "The cat sat on the mat.",
]


def planted(n: int, dups: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 384)).astype(np.float32)
    src = rng.choice(n // 2, dups, replace=False)
    dst = src + n // 2
    x[dst] = x[src] + 0.05 * rng.standard_normal((dups, 384)).astype(np.float32)
    return x, {(int(a), int(b)) for a, b in zip(src, dst, strict=True)}


def test_paraphrases_on_real_sentences(embedder: Embedder) -> None:
    x = embedder.embed(SENTENCES)
    pairs = mine_pairs(x, MiningOptions(threshold=0.7))
    found = {(p.a, p.b) for p in pairs}
    assert (0, 6) in found and (0, 1) in found and (1, 6) in found
    assert all(p.a < p.b for p in pairs)
    assert pairs[0].score == pytest.approx(1.0, abs=1e-5)  # the exact duplicate first
    assert [p.score for p in pairs] == sorted((p.score for p in pairs), reverse=True)
    groups = duplicate_groups(pairs, len(SENTENCES))
    assert [0, 1, 6] in groups
    assert 4 not in duplicates_to_drop(groups) and 0 not in duplicates_to_drop(groups)


def test_exact_chunking_and_ann_agree() -> None:
    x, truth = planted(3000, 40)
    full = mine_pairs(x, MiningOptions(threshold=0.9, strategy="exact", chunk=4096))
    small = mine_pairs(x, MiningOptions(threshold=0.9, strategy="exact", chunk=333))
    ann = mine_pairs(x, MiningOptions(threshold=0.9, strategy="ann"))
    assert {(p.a, p.b) for p in full} == truth
    assert [(p.a, p.b) for p in full] == [(p.a, p.b) for p in small]
    np.testing.assert_allclose([p.score for p in small], [p.score for p in full], atol=1e-6)
    assert {(p.a, p.b) for p in ann} == truth
    np.testing.assert_allclose([p.score for p in ann], [p.score for p in full], atol=1e-5)


def test_top_k_limits_partners() -> None:
    base = np.random.default_rng(3).standard_normal((1, 32)).astype(np.float32)
    x = np.repeat(base, 6, axis=0) + 0.01 * np.arange(6, dtype=np.float32)[:, None]
    everything = mine_pairs(x, MiningOptions(threshold=0.5))
    limited = mine_pairs(x, MiningOptions(threshold=0.5, top_k=1))
    assert len(everything) == 15 and 3 <= len(limited) < 15


@pytest.mark.slow
def test_memory_stays_bounded() -> None:
    """20k x 384: an n x n float32 matrix would be 1.6 GB; chunked search stays far below."""
    x, truth = planted(20_000, 30, seed=5)
    tracemalloc.start()
    pairs = mine_pairs(x, MiningOptions(threshold=0.9, chunk=1024))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\ndedup 20k x 384 exact, chunk 1024: peak {peak / 2**20:.1f} MiB traced")
    assert {(p.a, p.b) for p in pairs} == truth
    assert peak < 2 * x.nbytes + 64 * 2**20


def test_bad_options() -> None:
    x = np.eye(3, dtype=np.float32)
    with pytest.raises(InputError, match="threshold"):
        mine_pairs(x, MiningOptions(threshold=2))
    with pytest.raises(InputError, match="raise the threshold"):
        mine_pairs(np.ones((50, 4), np.float32), MiningOptions(threshold=0.5, max_pairs=100))


def test_collection_tag_and_drop(tmp_path: Path, embedder: Embedder) -> None:
    col = Collection.open("dups", data_dir=tmp_path, create=True, embedder=embedder)
    ids = [f"s{i}" for i in range(len(SENTENCES))]
    col.add(SENTENCES, ids=ids, metadatas=[{"n": i} for i in range(len(SENTENCES))])
    report = dedup_collection(col, MiningOptions(threshold=0.95), action="tag")
    assert report.groups == [["s0", "s6"]] and report.changed == 1
    assert col.get(["s6"])[0].metadata == {"n": 6, "duplicate_of": "s0"}
    assert col.get(["s0"])[0].metadata == {"n": 0}
    report = dedup_collection(col, MiningOptions(threshold=0.7), action="drop")
    assert report.to_dict()["duplicates"] == 2 and report.changed == 2
    assert col.count() == len(SENTENCES) - 2
    assert {it.id for it in col.items()} == {"s0", "s2", "s3", "s4", "s5"}
    col.close()


def test_cli_dedup_file(
    tmp_path: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from embedbox.cli import common
    from embedbox.cli import main as cli_main

    monkeypatch.setitem(common._embedders, ("all-MiniLM-L6-v2", "auto", None), embedder)
    src = tmp_path / "s.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(SENTENCES))
    )
    kept = tmp_path / "kept.jsonl"
    cli_main(["dedup", str(src), "--threshold", "0.95", "-o", str(kept), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["groups"] == [["s0", "s6"]] and out["duplicates"] == 1
    assert [json.loads(line)["id"] for line in kept.read_text().splitlines()] == [
        f"s{i}" for i in range(6)
    ]
    with pytest.raises(SystemExit):
        cli_main(["dedup", str(src), "--drop"])
    assert "--output" in capsys.readouterr().err
