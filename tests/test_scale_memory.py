"""100 000 short rows stream through a job with bounded memory (peak RSS measured)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedbox.datasets import sts_b
from tests.tiny_models import build

# The model is a tiny random BERT (tests/tiny_models.py): this test is about streaming, not about
# the model, and the real one needs ~10 minutes for 100k rows on 2 cores.
# `benchmarks/dataset.py --rows 100000` measures the same with all-MiniLM-L6-v2.
JOB = """
import json, resource, sys
from embedbox.scale import JobSpec, run_job
spec = JobSpec((sys.argv[1],), sys.argv[2], model=sys.argv[3], shard_rows=5000, workers=1,
               compute="fp32")
r = run_job(spec)
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": r.total_rows, "peak_mib": peak_mib, "rows_per_s": r.rows_per_s}))
"""


def short_rows(n: int) -> list[str]:
    """n short texts: the first 3 to 6 words of STS-B train sentences, cycled."""
    pairs = sts_b("train")
    words = [s.split() for p in pairs for s in (p.a, p.b)]
    return [" ".join(words[i % len(words)][: 3 + i % 4]) for i in range(n)]


def run(path: Path, out: Path, model: Path) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", JOB, str(path), str(out), str(model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_100k_rows_run_in_bounded_memory(tmp_path: Path) -> None:
    model = build("nomic_bert", tmp_path / "tiny-model")
    texts = short_rows(100_000)
    pq.write_table(pa.table({"text": texts}), tmp_path / "big.parquet", row_group_size=10_000)
    pq.write_table(pa.table({"text": texts[:5000]}), tmp_path / "small.parquet")
    small = run(tmp_path / "small.parquet", tmp_path / "out-small", model)
    big = run(tmp_path / "big.parquet", tmp_path / "out-big", model)
    print(
        f"\npeak RSS: 5 000 rows {small['peak_mib']:.0f} MiB, 100 000 rows {big['peak_mib']:.0f} MiB"
    )
    print(f"rows/s (100 000 rows, 1 process): {big['rows_per_s']}")
    assert (small["rows"], big["rows"]) == (5000, 100_000)
    # Streaming: 20x the rows costs at most a little more memory than one shard's worth.
    assert big["peak_mib"] < small["peak_mib"] + 150
