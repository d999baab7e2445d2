"""Train word vectors (word2vec / FastText through gensim) and save them without pickle."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedbox.errors import InputError, NotFound, require
from embedbox.models.words.formats import from_keyed
from embedbox.models.words.vectors import WordVectors
from embedbox.types import Progress


def read_corpus(source: str | os.PathLike[str] | Iterable[str]) -> list[list[str]]:
    """Tokenised sentences from a text file (one sentence or document per line) or strings."""
    simple_preprocess = require("gensim.utils", "words", "word-vector training").simple_preprocess

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
    gensim_models = require("gensim.models", "words", "word-vector training")
    FastText, Word2Vec = gensim_models.FastText, gensim_models.Word2Vec
    CallbackAny2Vec = require("gensim.models.callbacks", "words").CallbackAny2Vec

    if kind not in ("word2vec", "fasttext"):
        raise InputError(f"kind must be word2vec or fasttext, not {kind!r}")
    if dim < 2 or epochs < 1 or min_count < 1 or window < 1:
        raise InputError("dim must be >= 2 and epochs, min_count, window >= 1")
    sentences = read_corpus(corpus)

    class _Report(CallbackAny2Vec):  # type: ignore[misc,valid-type]
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
    return from_keyed(model.wv, f"{kind}-trained", subword=subword), model


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save a trained gensim model or WordVectors without pickle.

    FastText models -> Facebook binary (`.bin`, subwords kept); `.txt`/`.vec` -> word2vec text;
    `.bin` -> word2vec binary; anything else -> a folder with vectors.npy + vocab.txt.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FastText = require("gensim.models", "words").FastText

    if isinstance(model, FastText):
        save_facebook_model = require("gensim.models.fasttext", "words").save_facebook_model

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
        KeyedVectors = require("gensim.models", "words", "reading word2vec files").KeyedVectors

        kv2 = KeyedVectors(vectors.shape[1])
        kv2.add_vectors(words, vectors)
        kv2.save_word2vec_format(str(out), binary=out.suffix == ".bin")
        return out
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", np.asarray(vectors, np.float32), allow_pickle=False)
    (out / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    return out
