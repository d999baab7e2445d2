"""Shared fixtures. Tests never touch the network: offline mode is forced here."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
