"""`embedbox embed`, `similarity` and `models` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from embedbox import Embedder
from tests.cli_runner import run_cli
from tests.tolerance import assert_vectors_close

pytestmark = [pytest.mark.model, pytest.mark.numerics]  # also run with bf16 forced (make test)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embedbox.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_embed_json_matches_library(embedder: Embedder) -> None:
    out = run("embed", "a cat", "a kitten", "--json", "--compute", "fp32")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["model"] == "all-MiniLM-L6-v2" and data["dim"] == 384 and data["count"] == 2
    vecs = np.array(data["embeddings"], dtype=np.float32)
    np.testing.assert_allclose(vecs, embedder.embed(["a cat", "a kitten"]), atol=1e-5)


def test_embed_files_and_outputs(tmp_path: Path, auto_embedder: Embedder) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"body": t}) for t in ["alpha", "beta", "gamma"]))
    npy = tmp_path / "out.npy"
    out = run("embed", "--input", str(src), "--field", "body", "--output", str(npy))
    assert out.returncode == 0, out.stderr
    arr = np.load(npy)  # compute "auto", like the library default
    want = auto_embedder.embed(["alpha", "beta", "gamma"])
    assert_vectors_close(arr, want, auto_embedder.dtype)

    parquet = tmp_path / "out.parquet"
    out = run("embed", "--output", str(parquet), "--dimensions", "64", stdin="one\ntwo\n")
    assert out.returncode == 0, out.stderr
    table = pq.read_table(parquet)
    assert table.column("text").to_pylist() == ["one", "two"]
    assert len(table.column("embedding")[0].as_py()) == 64

    jsonl = tmp_path / "out.jsonl"
    out = run("embed", "x y z", "--precision", "binary", "--output", str(jsonl))
    assert out.returncode == 0, out.stderr
    row = json.loads(jsonl.read_text().splitlines()[0])
    assert len(row["embedding"]) == 48


def test_similarity_table_and_json() -> None:
    out = run("similarity", "a cat", "a kitten", "stock market crash", "--json")
    assert out.returncode == 0, out.stderr
    m = np.array(json.loads(out.stdout)["matrix"])
    assert m.shape == (3, 3) and m[0, 1] > 0.6 and m[0, 2] < 0.2
    table = run("similarity", "a cat", "a kitten")
    assert table.returncode == 0 and "0.766" in table.stdout


def test_models_lists_availability() -> None:
    out = run("models", "--json")
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["all-MiniLM-L6-v2"]["available"] is True
    assert rows["nomic-embed-text-v1.5"]["available"] is False
    assert "huggingface-cli download" in rows["nomic-embed-text-v1.5"]["source"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("embed", ""), "argument 1 is empty"),
        (("embed", "x", "--model", "nomic-embed-text-v1.5"), "not on this machine"),
        (("embed", "--input", "/nonexistent.txt"), "no such file"),
        (("embed", "x", "--precision", "int4"), "unknown precision"),
        (("embed", "x", "--output", "out.xlsx"), "unsupported file type"),
        (("similarity", "only one"), "at least two"),
        # usage errors: one line too, exit 2
        (("embed", "x", "--no-such-option"), "No such option: --no-such-option"),
        (("no-such-command",), "No such command 'no-such-command'"),
        (("collection", "info"), "Missing argument"),
        (("search", "news", "q", "-k", "many"), "Invalid value for '-k'"),
    ],
)
def test_errors_are_one_line_and_non_zero(args: tuple[str, ...], message: str) -> None:
    out = run_cli(*args)
    assert out.code == 2, out
    assert len(out.error_lines) == 1 and message in out.error_lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_a_usage_error_points_at_the_help_of_its_command() -> None:
    out = run_cli("collection", "info")
    assert "(see 'embedbox collection info --help')" in out.stderr


def test_version() -> None:
    import embedbox

    out = run_cli("--version")
    assert out.code == 0 and out.stdout.strip() == f"embedbox {embedbox.__version__}"


def test_serve_on_a_busy_port_fails_before_loading_models(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("serve", "--port", str(port), "--model", str(tmp_path / "never-loaded"))
    assert out.code == 2 and len(out.error_lines) == 1, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr
    assert "serving" not in out.stderr


def test_embed_options_batch_size_no_normalize_device_and_csv(tmp_path: Path) -> None:
    from tests.tiny_models import build

    tiny = str(build("bert", tmp_path / "tiny"))
    texts = ["a cat", "a dog", "stocks fell"]
    common = ["embed", *texts, "--model", tiny, "--compute", "fp32", "--json"]
    plain = np.array(json.loads(run_cli(*common).stdout)["embeddings"])
    batched = run_cli(*common, "--batch-size", "1", "--device", "cpu")
    assert batched.code == 0, batched.stderr
    np.testing.assert_allclose(np.array(json.loads(batched.stdout)["embeddings"]), plain, atol=1e-5)
    raw = np.array(json.loads(run_cli(*common, "--no-normalize").stdout)["embeddings"])
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), plain, atol=1e-5)
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        out = tmp_path / f"v{suffix}"
        assert (
            run_cli("embed", *texts, "--model", tiny, "--compute", "fp32", "-o", str(out)).code == 0
        )
        lines = out.read_text().splitlines()
        header = lines[0].split(sep)
        assert header[:2] == ["id", "text"] and header[2:] == [f"e{j}" for j in range(32)]
        row = lines[3].split(sep)
        assert row[:2] == ["2", "stocks fell"]
        np.testing.assert_allclose([float(x) for x in row[2:]], plain[2], atol=1e-6)
    bad = run_cli(*common, "--batch-size", "0")
    assert bad.code == 2 and "--batch-size must be at least 1" in bad.stderr
    int8 = run_cli(*common, "--no-normalize", "--precision", "int8")
    assert int8.code == 2 and "keep normalize on" in int8.stderr
