"""Shared fixtures. Tests never touch the network (offline mode is forced here) and never the
user's own data: every test gets a fresh, empty embedbox data directory.

Tiers (markers, see pyproject.toml): `make test-fast` runs what needs no pretrained model, no
browser and no Ray; `make test` runs everything. A test that asks for the `embedder` or
`auto_embedder` fixture is marked `model` here.
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Fixtures wider than one test (modules, the session) see this one; each test gets its own below.
os.environ["EMBEDBOX_DATA_DIR"] = tempfile.mkdtemp(prefix="embedbox-tests-")
os.environ.pop("XDG_DATA_HOME", None)
# Converted models and auto's choices go to a fresh folder shared by the session, never the
# user's cache; the suite runs on torch unless a test asks for another backend
# (tests/test_backends.py does), so that `backend="auto"` does not measure in every test.
os.environ["EMBEDBOX_CACHE_DIR"] = tempfile.mkdtemp(prefix="embedbox-cache-")
os.environ.setdefault("EMBEDBOX_BACKEND", "torch")

from collections.abc import Iterator
from pathlib import Path

import pytest

from embedbox import Embedder, hardware

MODEL_FIXTURES = {"embedder", "auto_embedder"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data directory: code that forgets `data_dir=` lands here, not in ~/.local."""
    path = tmp_path_factory.mktemp("embedbox-data")
    monkeypatch.setenv("EMBEDBOX_DATA_DIR", str(path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return path


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """all-MiniLM-L6-v2 in exact fp32: loaded once for the whole test session."""
    yield Embedder("all-MiniLM-L6-v2", compute="fp32")


@pytest.fixture(scope="session")
def auto_embedder(embedder: Embedder) -> Embedder:
    """all-MiniLM-L6-v2 in `auto` compute (bf16 where the CPU has it; else the fp32 one)."""
    if hardware.auto_dtype(hardware.default_device()) == embedder.dtype:
        return embedder
    return Embedder("all-MiniLM-L6-v2", compute="auto")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(os.environ["EMBEDBOX_CACHE_DIR"], ignore_errors=True)
