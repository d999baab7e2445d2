"""`collection reembed`: re-embed stored texts with another model and switch atomically.

Two tiny random BERTs of different sizes (32 and 48 dimensions) stand in for the old and the new
model, so a result that mixed them would show; a third (48 dimensions, other weights) checks a
switch that keeps the dimension. Other processes are real subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from embedbox.datasets import sts_b
from embedbox.embed import Embedder
from embedbox.store.ann import AnnOptions
from embedbox.store.collection import Collection
from embedbox.store.reembed import STAGE_FILE, reembed
from tests.tiny_models import build

TEXTS = list(dict.fromkeys(p.a for p in sts_b("test")[:80]))[:60]
QUERIES = ["a man plays the guitar", "a woman is slicing an onion", "stocks fell sharply"]


@pytest.fixture(autouse=True)
def exact(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """fp32 everywhere (this process and its children): rankings compared exactly. One torch
    thread: tiny models gain nothing from two, which thrash on a loaded machine."""
    monkeypatch.setenv("EMBEDBOX_CPU_COMPUTE", "fp32")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reembed-models")
    return build("bert", root / "old"), build("bert", root / "new", hidden_size=48, seed=1)


def _collection(root: Path, model: Path, n: int = len(TEXTS)) -> Collection:
    col = Collection.open(root / "col", str(model), create=True)
    col.add(TEXTS[:n], ids=[f"d{i}" for i in range(n)])
    return col


def _expected(model: Path, texts: list[str], query: str, k: int = 5) -> list[str]:
    emb = Embedder(str(model), compute="fp32")
    docs = emb.embed(texts, input_type="document")
    q = emb.embed([query], input_type="query")[0]
    order = np.argsort(-(docs @ q), kind="stable")[:k]
    return [f"d{i}" for i in order]


def _files(col: Collection) -> list[str]:
    return sorted(p.name for p in col.path.glob("*.bin") if p.name != "rows.bin")


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_reembed_switches_model_dim_and_results(tmp_path: Path, models: tuple[Path, Path]) -> None:
    old, new = models
    col = _collection(tmp_path, old)
    # Another connection, opened before the switch, searching through the HNSW index.
    other = Collection.open(tmp_path / "col", ann=AnnOptions(threshold=10))
    assert [h.id for h in other.search(QUERIES[0], k=5)] == _expected(old, TEXTS, QUERIES[0])
    keyword = [h.id for h in other.search("guitar", k=5, mode="keyword")]
    assert _files(col) == ["vectors-0.bin"]
    report = reembed(col, str(new), batch=16)
    assert (report.chunks, report.embedded, report.resumed) == (len(TEXTS), len(TEXTS), 0)
    assert (report.old_dim, report.new_dim, report.model_generation) == (32, 48, 1)
    # The next epoch's vector file replaced the old one; the staging file is gone.
    assert _files(col) == ["vectors-1.bin"]
    assert not (col.path / STAGE_FILE).exists()
    for c in (col, other):
        info = c.info()
        assert (info["model"], info["dim"]) == (str(new.resolve()), 48)
        for q in QUERIES:
            assert [h.id for h in c.search(q, k=5)] == _expected(new, TEXTS, q)
        assert [h.id for h in c.search("guitar", k=5, mode="keyword")] == keyword
    stored = dict(zip(*col.vectors(), strict=True))
    want = Embedder(str(new), compute="fp32").embed(TEXTS[:3], input_type="document")
    np.testing.assert_allclose(np.stack([stored[f"d{i}"] for i in range(3)]), want, atol=1e-5)
    # A writer opened before the switch embeds new texts with the new model.
    other.add(["a brand new sentence about guitars"], ids=["late"])
    late = dict(zip(*col.vectors(ids=["late"]), strict=True))["late"]
    np.testing.assert_allclose(
        late,
        Embedder(str(new), compute="fp32").embed(["a brand new sentence about guitars"])[0],
        atol=1e-5,
    )
    # A switch that keeps the dimension: the same table arrays, a new file, a rebuilt index.
    third = build("bert", new.parent / "third", hidden_size=48, seed=2)
    texts = [*TEXTS, "a brand new sentence about guitars"]
    assert _expected(third, texts, QUERIES[1]) != _expected(new, texts, QUERIES[1])
    col.reembed(str(third), batch=32)
    assert _files(col) == ["vectors-2.bin"]
    for c in (col, other):
        assert c.info()["model"] == str(third.resolve())
        for q in QUERIES:
            got = [h.id.replace("late", f"d{len(TEXTS)}") for h in c.search(q, k=5)]
            assert got == _expected(third, texts, q)
    other.close()
    col.close()


@pytest.mark.slow  # real subprocesses killed mid-run
def test_searches_during_reembed_see_old_or_new_never_a_mix(
    tmp_path: Path, models: tuple[Path, Path]
) -> None:
    old, new = models
    col = _collection(tmp_path, old)
    before, after = _expected(old, TEXTS, QUERIES[1]), _expected(new, TEXTS, QUERIES[1])
    assert before != after
    # Another process answers searches on request, one line each.
    child = subprocess.Popen(
        [sys.executable, "-c", SEARCHER, str(tmp_path / "col"), QUERIES[1]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert child.stdin is not None and child.stdout is not None

    def ask() -> list[str]:
        child.stdin.write("search\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        return json.loads(child.stdout.readline())  # type: ignore[union-attr]

    assert ask() == before
    # A thread in this process searches without pause for the whole re-embed.
    seen: list[list[str]] = []
    errors: list[str] = []
    done = threading.Event()
    reader = Collection.open(tmp_path / "col")

    def hammer() -> None:
        while not done.is_set() or len(seen) < 3:
            try:
                seen.append([h.id for h in reader.search(QUERIES[1], k=5)])
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=hammer)
    thread.start()
    mid: list[list[str]] = []

    def progress(done_: int, total: int) -> None:
        if done_ < total:  # between batches: staged, not switched
            mid.append(ask())

    try:
        reembed(col, str(new), batch=16, progress=progress)
    finally:
        done.set()
        thread.join()
    assert mid and all(m == before for m in mid)
    assert ask() == after
    child.stdin.close()
    assert child.wait(timeout=60) == 0
    assert not errors, errors[:3]
    assert {tuple(s) for s in seen} <= {tuple(before), tuple(after)}
    assert [h.id for h in reader.search(QUERIES[1], k=5)] == after
    reader.close()
    col.close()


SEARCHER = """
import json, sys
from embedbox.store.collection import Collection
col = Collection.open(sys.argv[1])
for line in sys.stdin:
    print(json.dumps([h.id for h in col.search(sys.argv[2], k=5)]), flush=True)
"""

KILLED = """
import sys, time
from pathlib import Path
from embedbox.store.collection import Collection
from embedbox.store.reembed import reembed
col = Collection.open(sys.argv[1])
marker = Path(sys.argv[3])

def progress(done, total):
    if done >= 2 * 16:  # two batches staged and committed: stop here until killed
        marker.write_text(str(done))
        while True:
            time.sleep(1)

reembed(col, sys.argv[2], batch=16, progress=progress)
"""


@pytest.mark.slow  # real subprocesses killed mid-run
def test_killed_reembed_resumes_and_the_collection_stays_usable(
    tmp_path: Path, models: tuple[Path, Path]
) -> None:
    old, new = models
    col = _collection(tmp_path, old)
    marker = tmp_path / "staged"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(tmp_path / "col"), str(new), str(marker)], env=_env()
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert child.poll() is None, "the re-embed child exited early"
            assert time.monotonic() < deadline, "the re-embed child never staged two batches"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    staged = int(marker.read_text())
    # Killed mid-way: still the old model, searches and writes still work.
    assert col.info()["model"] == str(old.resolve())
    assert [h.id for h in col.search(QUERIES[2], k=5)] == _expected(old, TEXTS, QUERIES[2])
    col.add(["one more sentence"], ids=[f"d{len(TEXTS)}"])
    assert (col.path / STAGE_FILE).exists() and _files(col) == [STAGE_FILE, "vectors-0.bin"]
    report = reembed(col, str(new), batch=16)
    assert report.resumed == staged
    assert report.embedded == len(TEXTS) + 1 - staged
    texts = [*TEXTS, "one more sentence"]
    for q in QUERIES:
        assert [h.id for h in col.search(q, k=5)] == _expected(new, texts, q)
    assert _files(col) == ["vectors-1.bin"]
    col.close()


def test_reembed_cli_and_refusals(
    tmp_path: Path, models: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from embedbox.cli import main
    from embedbox.errors import InputError

    old, new = models
    _collection(tmp_path / "data" / "collections", old, n=20).close()
    data = str(tmp_path / "data")
    main(["collection", "reembed", "col", "--model", str(new), "--data-dir", data, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (out["chunks"], out["new_dim"]) == (20, 48)
    vectors_only = Collection.open(tmp_path / "vec", dim=4, create=True)
    vectors_only.add(None, ids=["a"], vectors=np.ones((1, 4), np.float32))
    with pytest.raises(InputError, match="no stored text"):
        reembed(vectors_only, str(new))
    vectors_only.close()


def test_old_model_vectors_are_refused_after_a_switch_elsewhere(
    tmp_path: Path, models: tuple[Path, Path]
) -> None:
    """A writer that embedded with the old model and hands its vectors in after another
    connection switched is told the collection's new dimension, and nothing is stored."""
    from embedbox.errors import InputError, NotFound

    old, new = models
    col = _collection(tmp_path, old, n=10)
    other = Collection.open(tmp_path / "col")
    stale = Embedder(str(old), compute="fp32").embed(["an old-model vector"])
    col.reembed(str(new), batch=16)
    with pytest.raises(InputError, match="vectors have 32 dimensions; collection 'col' has 48"):
        other.add(["an old-model vector"], ids=["stale"], vectors=stale)
    assert other.count() == 10
    with pytest.raises(NotFound):
        col.get(["stale"])
    other.close()
    col.close()
