"""Shared fixtures. Tests never touch the network: offline mode is forced here."""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Converted models and auto's choices go to a fresh folder, never the user's cache; the suite
# runs on torch unless a test asks for another backend (tests/test_backends.py does), so that
# `backend="auto"` does not measure in every test that loads a model.
os.environ["EMBEDBOX_CACHE_DIR"] = tempfile.mkdtemp(prefix="embedbox-cache-")
os.environ.setdefault("EMBEDBOX_BACKEND", "torch")

import pytest

from embedbox import Embedder, hardware


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """all-MiniLM-L6-v2 in exact fp32: loaded once for the whole test session."""
    return Embedder("all-MiniLM-L6-v2", compute="fp32")


@pytest.fixture(scope="session")
def auto_embedder(embedder: Embedder) -> Embedder:
    """all-MiniLM-L6-v2 in `auto` compute (bf16 where the CPU has it; else the fp32 one)."""
    if hardware.auto_dtype(hardware.default_device()) == embedder.dtype:
        return embedder
    return Embedder("all-MiniLM-L6-v2", compute="auto")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(os.environ["EMBEDBOX_CACHE_DIR"], ignore_errors=True)
