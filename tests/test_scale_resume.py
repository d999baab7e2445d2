"""Kill a real `embedbox embed-dataset` process midway (SIGKILL), rerun: complete, exact output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedbox import Embedder
from embedbox.scale import JobSpec, run_job
from tests.scale_data import assert_vectors_match, read_output, write_jsonl

pytestmark = pytest.mark.model


def test_killed_job_resumes_without_duplicates_or_gaps(tmp_path: Path, embedder: Embedder) -> None:
    rows = write_jsonl(tmp_path / "in.jsonl", 400, bad=False)
    out = tmp_path / "out"
    args = ["in.jsonl", "--output", "out", "--id-column", "doc", "--shard-rows", "20"]
    args += ["--workers", "1", "--compute", "fp32"]
    cmd = [sys.executable, "-m", "embedbox.cli", "embed-dataset", *args]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    manifest = out / "manifest.json"
    deadline = time.monotonic() + 240
    done: dict[str, object] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists():
            done = json.loads(manifest.read_text())["shards"]
            if len(done) >= 2:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(done) < 20, "the job should be killed midway"
    state = json.loads(manifest.read_text())
    assert not state["complete"]

    spec = JobSpec(("in.jsonl",), "out", id_column="doc", shard_rows=20, workers=1, compute="fp32")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        report = run_job(spec, embedder=embedder)
    finally:
        os.chdir(cwd)
    assert report.skipped_shards == len(state["shards"]) and report.shards == 20
    assert report.rows + 20 * report.skipped_shards == 400
    assert not list(out.glob(".tmp-*"))
    table = read_output(out)
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 400
    assert set(ids) == {str(r["doc"]) for r in rows}
    assert_vectors_match(table, rows, embedder)
