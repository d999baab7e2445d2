"""Collection API a Chroma user expects: batch queries, search by vector over HTTP, peek,
metadata-only update, read-only open and `where_document`. A tiny random BERT embeds here:
these tests check the plumbing, not the quality of vectors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from embedbox import Collection, Embedder, InputError, NotFound, StorageError
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread
from tests.tiny_models import build

TEXTS = [
    "Bushfires threaten homes west of Sydney.",
    "The stock market fell on Monday.",
    "Firefighters contained the blaze overnight.",
    "Rain is forecast for the weekend.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return Embedder(str(build("bert", tmp_path_factory.mktemp("m") / "tiny")), compute="fp32")


@pytest.fixture
def col(tmp_path: Path, tiny: Embedder) -> Iterator[Collection]:
    c = Collection.open("news", data_dir=tmp_path, create=True, embedder=tiny)
    c.add(TEXTS, ids=["f1", "m1", "f2", "w1"], metadatas=[{"n": i} for i in range(4)])
    yield c
    c.close()


def test_a_list_of_queries_is_one_embedding_pass(col: Collection, tiny: Embedder) -> None:
    calls: list[int] = []
    embed = tiny.embed

    def counting(texts: list[str], **kw: object) -> np.ndarray:
        calls.append(len(texts))
        return embed(texts, **kw)  # type: ignore[arg-type]

    tiny.embed = counting  # type: ignore[method-assign]
    try:
        batch = col.search(["fires near Sydney", "share prices", "weather"], k=2)
    finally:
        del tiny.embed
    assert calls == [3]  # one pass for all three
    singles = [col.search(q, k=2) for q in ["fires near Sydney", "share prices", "weather"]]
    assert [[h.id for h in hits] for hits in batch] == [[h.id for h in hits] for hits in singles]
    vec_batch = col.search(np.stack(col.vectors(ids=["f1", "m1"])[1]), k=1)
    assert [hits[0].id for hits in vec_batch] == ["f1", "m1"]


def test_where_document_filters_by_text(col: Collection) -> None:
    q = col.vectors(ids=["m1"])[1][0]
    fire = {h.id for h in col.search(q, k=4, where_document={"$contains": "fire"})}
    assert fire == {"f1"}  # case-sensitive, as Chroma: "Firefighters" has no "fire"
    both = col.search(
        q, k=4, where_document={"$or": [{"$contains": "fire"}, {"$contains": "Fire"}]}
    )
    assert {h.id for h in both} == {"f1", "f2"}
    combined = col.search(
        q, k=4, where={"n": {"$gte": 1}}, where_document={"$not_contains": "Rain"}
    )
    assert {h.id for h in combined} == {"m1", "f2"}
    assert [i.id for i in col.items(where_document={"$contains": "market"})] == ["m1"]
    assert col.vectors(where_document={"$contains": "blaze"})[0] == ["f2"]
    assert col.delete(where_document={"$contains": "Rain"}) == 1 and col.count() == 3
    with pytest.raises(InputError, match="where_document: unknown operator '\\$regex'"):
        col.search(q, where_document={"$regex": "f.*"})


def test_peek_update_and_read_only(col: Collection, tmp_path: Path) -> None:
    assert [i.id for i in col.peek(2)] == ["f1", "m1"]
    assert col.update(["w1"], metadatas=[{"n": 9, "kind": "weather"}]) == 1
    assert col.get(["w1"])[0].metadata == {"n": 9, "kind": "weather"}
    with pytest.raises(NotFound, match="'nope'"):
        col.update(["w1", "nope"], metadatas=[{}, {}])
    assert col.get(["w1"])[0].metadata == {"n": 9, "kind": "weather"}  # nothing changed
    with Collection.open("news", data_dir=tmp_path, read_only=True) as ro:
        assert ro.count() == 4 and ro.read_only
        with pytest.raises(StorageError, match="read-only"):
            ro.update(["w1"], metadatas=[{}])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder) -> Iterator[str]:
    data = tmp_path_factory.mktemp("served")
    name = str(tiny.info.path)
    with ServerThread(
        create_app(ServerSettings(models=(name,), data_dir=data), {name: tiny})
    ) as url:
        assert httpx.post(url + "/collections", json={"name": "news"}).status_code == 201
        body = {"texts": TEXTS, "ids": ["f1", "m1", "f2", "w1"]}
        assert httpx.post(url + "/collections/news/items", json=body).status_code == 200
        yield url


def test_server_batch_and_vector_search(server: str, tiny: Embedder) -> None:
    one = httpx.post(server + "/collections/news/search", json={"query": "fires", "k": 2}).json()
    many = httpx.post(
        server + "/collections/news/search", json={"queries": ["fires", "stocks"], "k": 2}
    ).json()
    assert many["results"][0] == one and len(many["results"]) == 2
    vec = tiny.embed(["fires"], input_type="query")[0].tolist()
    by_vector = httpx.post(server + "/collections/news/search", json={"vector": vec, "k": 2})
    assert [h["id"] for h in by_vector.json()["hits"]] == [h["id"] for h in one["hits"]]
    both = httpx.post(server + "/collections/news/search", json={"vectors": [vec, vec], "k": 1})
    assert len(both.json()["results"]) == 2
    ids_only = httpx.post(
        server + "/collections/news/search", json={"query": "fires", "k": 1, "include": []}
    ).json()["hits"][0]
    assert ids_only["text"] == "" and ids_only["metadata"] == {} and ids_only["id"]
    text = httpx.post(
        server + "/collections/news/search",
        json={"query": "x", "where_document": {"$contains": "market"}},
    )
    assert [h["id"] for h in text.json()["hits"]] == ["m1"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"k": 2}, "query"),
        ({"query": "a", "vector": [0.1]}, "query"),
        ({"vector": [0.1, 0.2]}, None),  # wrong dimension
        ({"query": "a", "where_document": {"$x": "a"}}, "where_document"),
    ],
)
def test_server_search_errors(server: str, body: dict[str, object], param: str | None) -> None:
    r = httpx.post(server + "/collections/news/search", json=body)
    assert r.status_code == 400, r.text
    if param is not None:
        assert r.json()["error"]["param"] == param
    else:
        assert "dimensions" in r.json()["error"]["message"]
