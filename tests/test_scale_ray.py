"""The Ray engine gives the same vectors as `Embedder.embed`: on a local instance the job starts
itself, and on an existing cluster reached by address."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from embedbox import Embedder
from embedbox.scale import JobSpec, read_errors, run_job
from tests.scale_data import assert_vectors_match, read_output, write_jsonl

pytestmark = pytest.mark.ray

pytest.importorskip("ray")


def test_ray_engine_matches_embed(
    tmp_path: Path, embedder: Embedder, capfd: pytest.CaptureFixture[str]
) -> None:
    import ray

    rows = write_jsonl(tmp_path / "in.jsonl", 40)
    spec = JobSpec(
        (str(tmp_path / "in.jsonl"),),
        str(tmp_path / "out"),
        id_column="doc",
        engine="ray",
        workers=2,
        shard_rows=12,
        compute="fp32",
    )
    report = run_job(spec)
    assert not ray.is_initialized()  # the job shut down the instance it started
    assert (report.engine, report.workers, report.rows, report.bad_rows) == ("ray", 2, 40, 4)
    table = read_output(tmp_path / "out")
    assert sorted(table.column("id").to_pylist()) == sorted(str(r["doc"]) for r in rows)
    assert_vectors_match(table, rows, embedder)
    assert [e["id"] for e in read_errors(str(tmp_path / "out"))][:3] == [
        "bad-empty",
        "bad-type",
        "bad-missing",
    ]
    assert "deprecated" not in capfd.readouterr().err  # e.g. map_batches(concurrency=)


@pytest.fixture
def ray_cluster() -> Iterator[str]:
    """A separate Ray head on loopback, started and stopped with Ray's own CLI."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a limit
    ray_cli = str(Path(sys.executable).with_name("ray"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}"],
        check=True, capture_output=True, timeout=180, env=env,
    )  # fmt: skip
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_engine_on_an_existing_cluster(
    tmp_path: Path, embedder: Embedder, ray_cluster: str
) -> None:
    import ray

    rows = write_jsonl(tmp_path / "in.jsonl", 20)
    spec = JobSpec(
        (str(tmp_path / "in.jsonl"),),
        str(tmp_path / "out"),
        id_column="doc",
        engine="ray",
        address=ray_cluster,
        workers=2,
        shard_rows=10,
        compute="fp32",
    )
    report = run_job(spec)
    assert not ray.is_initialized()  # disconnected; the cluster itself keeps running
    assert (report.rows, report.bad_rows) == (20, 4)
    assert_vectors_match(read_output(tmp_path / "out"), rows, embedder)
    ray.init(address=ray_cluster)  # still up after the job disconnected
    assert ray.cluster_resources().get("CPU") == 2.0
    ray.shutdown()
