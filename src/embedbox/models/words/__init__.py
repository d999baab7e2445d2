"""Static word vectors: the model (`WordVectors`), loading from files or the shipped GloVe
package (`load`), and training with gensim (`train`, `save`)."""

from embedbox.models.words.formats import Format, load
from embedbox.models.words.train import read_corpus, save, train
from embedbox.models.words.vectors import (
    AnalogyReport,
    SectionScore,
    SimilarityReport,
    WordScore,
    WordVectors,
)

__all__ = [
    "AnalogyReport",
    "Format",
    "SectionScore",
    "SimilarityReport",
    "WordScore",
    "WordVectors",
    "load",
    "read_corpus",
    "save",
    "train",
]
