"""Word vectors over HTTP, where the `words` extra is installed.

    POST /words/similar, /words/analogy, /words/similarity, /words/odd-one-out, /words/vectors

The word vectors (`settings.word_model`, GloVe 6B 50d by default) load on first use, once, in the
thread pool; a missing package is a 503 naming what to install, a model turned off (None) a 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from embedbox.errors import InputError, OutOfVocabulary
from embedbox.server.auth import require_read
from embedbox.server.errors import ApiError
from embedbox.server.limits import check_count, check_text
from embedbox.server.service import ERRORS, Lazy, check_k, json_response, settings_of, vectors_json
from embedbox.server.settings import ServerSettings

if TYPE_CHECKING:
    from embedbox.models.words import WordVectors

router = APIRouter(prefix="/words", tags=["words"], dependencies=[Depends(require_read)])
Word = Annotated[str, Field(min_length=1, description="A word, or a phrase of words (averaged).")]


def install(app: FastAPI) -> None:
    """Add the words routes; the word vectors load on first use."""
    settings: ServerSettings = app.state.settings
    app.state.word_model = Lazy("word model", settings.word_model, _load_words)
    app.include_router(router)


def _load_words(name: str) -> WordVectors:
    from embedbox.words import load_words

    return load_words(name)


class WordScoreOut(BaseModel):
    word: str
    score: float


class WordsResponse(BaseModel):
    model: str
    results: list[WordScoreOut]


class SimilarWords(BaseModel):
    """`POST /words/similar`: nearest words to a word or phrase."""

    model_config = ConfigDict(extra="forbid")

    word: Word
    k: int = Field(10, ge=1)
    exclude: list[str] = Field(default_factory=list, description="Words never to return.")


class Analogy(BaseModel):
    """`POST /words/analogy`: `a` is to `b` as `c` is to ? (b - a + c)."""

    model_config = ConfigDict(extra="forbid")

    a: Word
    b: Word
    c: Word
    k: int = Field(10, ge=1)
    method: Literal["3cosadd", "3cosmul"] = "3cosadd"


class WordPairs(BaseModel):
    """`POST /words/similarity`: cosine similarity of each pair of words or phrases."""

    model_config = ConfigDict(extra="forbid")

    pairs: list[Annotated[list[Word], Field(min_length=2, max_length=2)]] = Field(min_length=1)


class PairScores(BaseModel):
    model: str
    scores: list[float]


class WordList(BaseModel):
    """`POST /words/odd-one-out` (at least three) and `POST /words/vectors`."""

    model_config = ConfigDict(extra="forbid")

    words: list[Word] = Field(min_length=1)


class OddOneOut(BaseModel):
    model: str
    word: str
    score: float = Field(description="Its similarity to the mean of the others.")


class WordVectorsOut(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]]


def _known(wv: WordVectors, text: str, param: str) -> np.ndarray:
    """The phrase vector, or a 404 naming the unknown word and close spellings."""
    try:
        return wv.phrase_vector(text)
    except OutOfVocabulary as exc:
        raise ApiError(404, f"{param}: {exc}", param=param, code="word_not_found") from None
    except InputError as exc:
        raise ApiError(400, f"{param}: {exc}", param=param, code="invalid_value") from None


async def _words(request: Request, checks: list[tuple[str, str]]) -> WordVectors:
    """Load the word vectors and check every (param, text) before any work is done."""
    s = settings_of(request)
    check_count(len(checks), s.max_inputs, checks[0][0].split("[")[0], "words")
    for param, text in checks:
        check_text(text, param, s.max_input_chars)
    wv: WordVectors = await request.app.state.word_model.get()
    for param, text in checks:
        _known(wv, text, param)
    return wv


def _scores(found: list[Any]) -> list[WordScoreOut]:
    return [WordScoreOut(word=w.word, score=w.score) for w in found]


@router.post("/similar", response_model=WordsResponse, responses=ERRORS)
async def similar_words(body: SimilarWords, request: Request) -> WordsResponse:
    """The `k` words nearest to a word or phrase (the query's own words left out)."""
    check_k(request, body.k)
    wv = await _words(request, [("word", body.word)])
    found = await run_in_threadpool(wv.similar, body.word, body.k, body.exclude)
    return WordsResponse(model=wv.name, results=_scores(found))


@router.post("/analogy", response_model=WordsResponse, responses=ERRORS)
async def analogy(body: Analogy, request: Request) -> WordsResponse:
    """`a` is to `b` as `c` is to ...: man, king, woman -> queen (the inputs are never answers)."""
    check_k(request, body.k)
    wv = await _words(request, [("a", body.a), ("b", body.b), ("c", body.c)])
    found = await run_in_threadpool(wv.analogy, body.a, body.b, body.c, body.k, body.method)
    return WordsResponse(model=wv.name, results=_scores(found))


@router.post("/similarity", response_model=PairScores, responses=ERRORS)
async def word_similarity(body: WordPairs, request: Request) -> PairScores:
    """Cosine similarity of each `[word, word]` pair (phrases are averaged)."""
    checks = [
        (f"pairs[{i}][{j}]", w) for i, pair in enumerate(body.pairs) for j, w in enumerate(pair)
    ]
    wv = await _words(request, checks)
    return PairScores(model=wv.name, scores=[wv.similarity(a, b) for a, b in body.pairs])


@router.post("/odd-one-out", response_model=OddOneOut, responses=ERRORS)
async def odd_one_out(body: WordList, request: Request) -> OddOneOut:
    """The word least like the others (at least three words)."""
    if len(body.words) < 3:
        raise ApiError(400, "words: odd-one-out needs at least three words", param="words")
    wv = await _words(request, [(f"words[{i}]", w) for i, w in enumerate(body.words)])
    found = wv.odd_one_out(body.words)
    return OddOneOut(model=wv.name, word=found.word, score=found.score)


@router.post("/vectors", response_model=WordVectorsOut, responses=ERRORS)
async def word_vectors(body: WordList, request: Request) -> Response:
    """Unit vectors of words or phrases."""
    wv = await _words(request, [(f"words[{i}]", w) for i, w in enumerate(body.words)])
    rows = ",".join(vectors_json(wv.embed(body.words), "float"))
    return json_response({"model": wv.name, "dim": wv.dim}, {"vectors": f"[{rows}]"})
