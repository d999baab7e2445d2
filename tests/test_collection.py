"""Collections with all-MiniLM-L6-v2 on real news articles (gensim's Lee corpus)."""

from __future__ import annotations

import collections
import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedbox import Embedder
from embedbox.datasets import lee_background
from embedbox.errors import Conflict, InputError
from embedbox.store.chunking import ChunkOptions
from embedbox.store.collection import Collection

N_DOCS = 40


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return lee_background()[:N_DOCS]


@pytest.fixture(scope="module")
def lee(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, docs: list[str]
) -> Collection:
    folder = tmp_path_factory.mktemp("lee") / "lee"
    col = Collection.open(folder, create=True, embedder=embedder)
    metas = [{"n": i, "tags": ["even" if i % 2 == 0 else "odd"]} for i in range(N_DOCS)]
    col.add(docs, ids=[f"lee-{i}" for i in range(N_DOCS)], metadatas=metas)
    return col


def test_long_documents_are_chunked_with_spans(
    lee: Collection, docs: list[str], embedder: Embedder
) -> None:
    info = lee.info()
    assert info["count"] == N_DOCS and info["chunks"] > N_DOCS
    long_doc = max(
        range(N_DOCS),
        key=lambda i: len(embedder.count_tokens([docs[i]])) and embedder.count_tokens([docs[i]])[0],
    )
    assert embedder.count_tokens([docs[long_doc]])[0] > embedder.max_tokens
    rows = lee.conn.execute(
        "SELECT c.start, c.end FROM chunks c JOIN documents d ON d.rid = c.doc "
        "WHERE d.id = ? ORDER BY c.idx",
        (f"lee-{long_doc}",),
    ).fetchall()
    assert len(rows) >= 2
    assert rows[0][0] == 0 and rows[-1][1] == len(docs[long_doc])
    for (_, e1), (s2, _) in itertools.pairwise(rows):
        assert s2 < e1  # neighbouring windows overlap
    pieces = [docs[long_doc][s:e] for s, e in rows]
    assert max(embedder.count_tokens(pieces)) <= embedder.max_tokens  # nothing truncated
    # A hit on that document carries the parent id, the chunk span and the chunk text.
    hit = lee.search(pieces[-1][:300], k=1)[0]
    assert (hit.id, hit.parent_id) == (f"lee-{long_doc}", f"lee-{long_doc}")
    assert hit.span is not None and hit.text == docs[long_doc][hit.span[0] : hit.span[1]]
    assert hit.chunk == len(rows) - 1


def test_semantic_search_finds_the_topic(lee: Collection, embedder: Embedder) -> None:
    hits = lee.search("bushfires threatening homes around Sydney", k=3)
    assert len(hits) == 3 and hits[0].score > 0.5
    assert all("fire" in h.text.lower() for h in hits)
    assert hits[0].score >= hits[1].score >= hits[2].score
    qvec = embedder.embed(["bushfires threatening homes around Sydney"], input_type="query")[0]
    assert [h.id for h in lee.search(qvec, k=3)] == [h.id for h in hits]


def _rare_terms(docs: list[str]) -> list[tuple[str, int]]:
    df: collections.Counter[str] = collections.Counter()
    for d in docs:
        df.update(set(re.findall(r"\b[A-Z][a-z]{4,}\b", d)))
    terms = sorted(w for w, c in df.items() if c == 1)
    return [(w, next(i for i, d in enumerate(docs) if w in d)) for w in terms[:20]]


def test_hybrid_beats_semantic_on_rare_exact_terms(lee: Collection, docs: list[str]) -> None:
    """Names that occur in one article only (places, people): BM25 anchors them."""
    rr: dict[str, list[float]] = {"semantic": [], "hybrid": []}
    for term, target in _rare_terms(docs):
        for mode in rr:
            ids = [h.id for h in lee.search(term, k=10, mode=mode)]  # type: ignore[arg-type]
            rank = ids.index(f"lee-{target}") + 1 if f"lee-{target}" in ids else None
            rr[mode].append(1 / rank if rank else 0.0)
    mrr = {m: float(np.mean(v)) for m, v in rr.items()}
    assert len(rr["hybrid"]) == 20
    assert mrr["hybrid"] >= 0.8, mrr
    assert mrr["hybrid"] > mrr["semantic"] + 0.2, mrr


def test_keyword_search_and_filters(lee: Collection) -> None:
    hits = lee.search("Shoalhaven", k=5, mode="keyword")
    assert hits and all("shoalhaven" in h.text.lower() for h in hits)
    assert hits[0].score > 0
    odd = lee.search("fire", k=10, mode="hybrid", where={"tags": {"$contains": "odd"}})
    assert odd and all(h.metadata["tags"] == ["odd"] for h in odd)
    few = lee.search("fire", k=10, where={"n": {"$in": [3, 4]}})
    assert sorted(h.id for h in few) == ["lee-3", "lee-4"]
    with pytest.raises(InputError, match="keyword search needs a text query"):
        lee.search(np.zeros(384, np.float32), mode="keyword")
    with pytest.raises(InputError, match="needs at least one word"):
        lee.search("?!", mode="keyword")
    with pytest.raises(InputError, match="mode must be"):
        lee.search("fire", mode="fuzzy")  # type: ignore[arg-type]


def test_document_vectors(lee: Collection, docs: list[str], embedder: Embedder) -> None:
    ids, mat = lee.vectors()
    assert ids == [f"lee-{i}" for i in range(N_DOCS)] and mat.shape == (N_DOCS, 384)
    np.testing.assert_allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-5)
    short = min(range(N_DOCS), key=lambda i: len(docs[i]))
    want = embedder.embed([docs[short]], input_type="document")[0]
    np.testing.assert_allclose(mat[short], want, atol=1e-5)
    (item,) = lee.get([f"lee-{short}"], include_vectors=True)
    assert item.text == docs[short] and item.metadata["n"] == short
    assert item.vector is not None
    np.testing.assert_allclose(item.vector, want, atol=1e-5)
    sub_ids, sub = lee.vectors(where={"n": {"$lt": 3}})
    assert sub_ids == ["lee-0", "lee-1", "lee-2"]
    np.testing.assert_array_equal(sub, mat[:3])


class _Counting:
    def __init__(self, emb: Embedder) -> None:
        self.emb, self.texts = emb, 0

    def __call__(self, texts: list[str], **kw: Any) -> np.ndarray:
        self.texts += len(texts)
        return self.emb.__class__.embed(self.emb, texts, **kw)


def test_unchanged_text_is_never_re_embedded(
    tmp_path: Path, embedder: Embedder, docs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _Counting(embedder)
    monkeypatch.setattr(embedder, "embed", counter)
    col = Collection.open(tmp_path / "c", create=True, embedder=embedder)
    texts = [d[:200] for d in docs[:4]]
    col.add(texts, ids=["a", "b", "c", "d"])
    assert counter.texts == 4
    stats = col.upsert_stats(texts, ids=["a", "b", "c", "d"])
    assert (stats.added, stats.updated, stats.unchanged, counter.texts) == (0, 0, 4, 4)
    col.upsert(texts[:1], ids=["a"], metadatas=[{"x": 1}])  # metadata only: no embedding
    assert counter.texts == 4 and col.get(["a"])[0].metadata == {"x": 1}
    col.upsert(["A new text about cricket."], ids=["b"])  # changed: embedded, metadata kept
    assert counter.texts == 5
    col.add([texts[2]], ids=["c2"])  # same text under a new id: vector comes from the cache
    assert counter.texts == 5
    np.testing.assert_array_equal(col.vectors(["c2"])[1], col.vectors(["c"])[1])
    assert col.delete(ids=["a", "zzz"]) == 1 and col.count() == 4
    assert [h.id for h in col.search("cricket", k=1)] == ["b"]


def test_model_and_options_are_recorded(tmp_path: Path, embedder: Embedder) -> None:
    col = Collection.open(
        "opts",
        data_dir=tmp_path,
        create=True,
        embedder=embedder,
        chunking=ChunkOptions(tokens=64, overlap=8),
    )
    col.add(["word " * 300], ids=["long"])
    assert col.info()["chunks"] == 6  # 300 tokens: windows of 64 starting every 56
    reopened = Collection.open("opts", data_dir=tmp_path)
    assert reopened.chunking == ChunkOptions(tokens=64, overlap=8)
    assert reopened.info()["model"] == "all-MiniLM-L6-v2"
    other = Embedder.__new__(Embedder)
    other.name = "bge-small-en-v1.5"
    with pytest.raises(Conflict, match=r"uses model 'all-MiniLM-L6-v2', not 'bge-small-en-v1\.5'"):
        Collection.open("opts", data_dir=tmp_path, embedder=other)
    with pytest.raises(InputError, match="text 0 is empty"):
        col.add(["   "])
    with pytest.raises(InputError, match="chunk overlap"):
        Collection.open(
            "x", data_dir=tmp_path, create=True, chunking=ChunkOptions(tokens=32, overlap=20)
        )


def test_a_model_folder_given_relative_works_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.tiny_models import build

    folder = build("bert", tmp_path / "models" / "tiny")
    monkeypatch.chdir(tmp_path / "models")
    with Collection.open("local", "./tiny", data_dir=tmp_path / "data", create=True) as col:
        col.add(["the cat sat on the mat", "stock markets fell"], ids=["cat", "stocks"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with Collection.open("local", "../models/tiny", data_dir=tmp_path / "data") as col:
        assert col.model == str(folder.resolve())
        assert {h.id for h in col.search("the cat sat on the mat", k=2)} == {"cat", "stocks"}
        assert col.search("the cat sat on the mat", k=1)[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_ann_recall_on_minilm_vectors(tmp_path: Path, embedder: Embedder) -> None:
    """HNSW vs exact on MiniLM vectors of STS-B sentences (800 stored, 60 queries)."""
    from embedbox.datasets import sts_b
    from embedbox.store.ann import AnnOptions

    sentences = list(dict.fromkeys(s for p in sts_b("test") for s in (p.a, p.b)))[:860]
    vecs = embedder.embed(sentences)
    stored, queries = vecs[:800], vecs[800:]
    col = Collection.open(tmp_path / "sts", create=True, ann=AnnOptions(threshold=200))
    col.add(sentences[:800], ids=[str(i) for i in range(800)], vectors=stored)
    assert col.info()["index"] == "hnsw" and col._embedder is None
    recall = []
    for q in queries:
        want = {str(i) for i in np.argsort(-(stored @ q), kind="stable")[:10]}
        recall.append(len(want & {h.id for h in col.search(q, k=10)}) / 10)
    assert np.mean(recall) >= 0.95, np.mean(recall)
