"""The Ray engine on a local Ray instance (2 CPUs) gives the same vectors as `Embedder.embed`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedbox import Embedder
from embedbox.scale import JobSpec, read_errors, run_job
from tests.scale_data import write_jsonl

pytest.importorskip("ray")


def test_ray_engine_matches_embed(tmp_path: Path, embedder: Embedder) -> None:
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
    table = pa.concat_tables(pq.read_table(p) for p in sorted((tmp_path / "out").glob("part-*")))
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(str(r["doc"]) for r in rows)
    text = {str(r["doc"]): str(r["text"]) for r in rows}
    got = np.asarray(table.column("vector").combine_chunks().values).reshape(-1, 384)
    np.testing.assert_allclose(got, embedder.embed([text[i] for i in ids]), atol=2e-5)
    assert [e["id"] for e in read_errors(str(tmp_path / "out"))][:3] == [
        "bad-empty",
        "bad-type",
        "bad-missing",
    ]
