"""Collections over HTTP with API keys: read-only vs read-write, search, filters, recommend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from embedbox import Embedder
from embedbox.server import ServerSettings, create_app
from embedbox.server.auth import load_keys
from embedbox.server.runner import ServerThread
from embedbox.store.collection import Collection

MODEL = "all-MiniLM-L6-v2"
RW, RO = "rw-secret-key-1", "ro-secret-key-2"
DOCS = [
    ("w1", "Heavy rain and storms are forecast for Sydney this weekend.", {"topic": "weather"}),
    ("w2", "A heatwave will push temperatures above 40 degrees in Perth.", {"topic": "weather"}),
    ("f1", "The central bank raised interest rates by a quarter point.", {"topic": "finance"}),
    ("f2", "Shares in tech companies fell sharply on Monday.", {"topic": "finance"}),
    ("s1", "The home team won the football final in extra time.", {"topic": "sport"}),
]


@pytest.fixture(scope="module")
def server(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("srv")
    key_file = root / "keys.txt"
    key_file.write_text(f"# operators\n{RW}\n\n{RO} ro\n")
    settings = ServerSettings(
        api_keys=load_keys(key_file=key_file, env=""), data_dir=root / "data", max_filter_depth=4
    )
    with ServerThread(create_app(settings, preloaded={MODEL: embedder})) as url:
        yield url


def call(server: str, method: str, path: str, key: str | None = RW, **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, server + path, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def news(server: str) -> str:
    r = call(server, "POST", "/collections", json={"name": "news"})
    assert r.status_code == 201, r.text
    assert r.json()["model"] == MODEL and r.json()["count"] == 0
    r = call(
        server,
        "POST",
        "/collections/news/items",
        json={
            "texts": [d[1] for d in DOCS],
            "ids": [d[0] for d in DOCS],
            "metadatas": [d[2] for d in DOCS],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["ids"] == [d[0] for d in DOCS]
    return "news"


def test_auth_missing_wrong_readonly_and_right_keys(server: str) -> None:
    r = call(server, "POST", "/v1/embeddings", key=None, json={"input": "hi"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "missing_api_key"
    r = call(server, "POST", "/v1/embeddings", key="wrong-key-123", json={"input": "hi"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    for key in (RO, RW):
        assert (
            call(server, "POST", "/v1/embeddings", key=key, json={"input": "hi"}).status_code == 200
        )
    r = call(server, "POST", "/collections", key=RO, json={"name": "nope"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "read_only_key"
    assert call(server, "GET", "/metrics", key=None).status_code == 401
    assert call(server, "GET", "/metrics", key=RO).status_code == 200
    assert call(server, "GET", "/health", key=None).status_code == 200
    assert call(server, "GET", "/ready", key=None).status_code == 200
    schema = call(server, "GET", "/openapi.json", key=None).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_search_with_filter_and_modes(server: str, news: str) -> None:
    body = {"query": "will it rain in Australia?", "k": 3}
    hits = call(server, "POST", f"/collections/{news}/search", key=RO, json=body).json()["hits"]
    assert hits[0]["id"] == "w1"
    body = {"query": "money and markets", "k": 5, "where": {"topic": "finance"}}
    hits = call(server, "POST", f"/collections/{news}/search", key=RO, json=body).json()["hits"]
    assert sorted(h["id"] for h in hits) == ["f1", "f2"]
    body = {"query": "football", "k": 2, "mode": "keyword"}
    hits = call(server, "POST", f"/collections/{news}/search", key=RO, json=body).json()["hits"]
    assert [h["id"] for h in hits] == ["s1"]
    body = {"query": "interest rates", "k": 2, "mode": "hybrid"}
    hits = call(server, "POST", f"/collections/{news}/search", key=RO, json=body).json()["hits"]
    assert hits[0]["id"] == "f1"
    body = {"query": "will it rain in Australia?", "k": 3, "include": ["metadata"]}
    hits = call(server, "POST", f"/collections/{news}/search", key=RO, json=body).json()["hits"]
    assert hits[0]["id"] == "w1" and hits[0]["text"] == ""
    assert hits[0]["metadata"] == {"topic": "weather"}
    body["include"] = ["vectors"]
    r = call(server, "POST", f"/collections/{news}/search", key=RO, json=body)
    assert r.status_code == 400 and "include" in r.text


def test_items_get_upsert_delete_and_readonly_writes(server: str, news: str) -> None:
    r = call(server, "POST", f"/collections/{news}/items/get", key=RO, json={"ids": ["f2", "w1"]})
    assert [i["id"] for i in r.json()["items"]] == ["f2", "w1"]
    assert r.json()["items"][1]["metadata"] == {"topic": "weather"}
    r = call(server, "POST", f"/collections/{news}/items/get", key=RO, json={"ids": ["zz"]})
    assert r.status_code == 404 and "zz" in r.json()["error"]["message"]
    new = {"texts": ["Snow is expected in the mountains."], "ids": ["w3"]}
    assert call(server, "PUT", f"/collections/{news}/items", key=RO, json=new).status_code == 403
    r = call(server, "PUT", f"/collections/{news}/items", json=new)
    assert r.json() == {"ids": ["w3"], "added": 1, "updated": 0, "unchanged": 0}
    assert call(server, "PUT", f"/collections/{news}/items", json=new).json()["unchanged"] == 1
    r = call(server, "POST", f"/collections/{news}/items", json=new)
    assert r.status_code == 409
    body = {"ids": ["w3"]}
    assert (
        call(server, "POST", f"/collections/{news}/items/delete", key=RO, json=body).status_code
        == 403
    )
    r = call(server, "POST", f"/collections/{news}/items/delete", json=body)
    assert r.json() == {"deleted": 1}
    assert call(server, "GET", f"/collections/{news}", key=RO).json()["count"] == len(DOCS)


def test_recommend(server: str, news: str) -> None:
    body = {"like": ["w1"], "k": 2}
    items = call(server, "POST", f"/collections/{news}/recommend", key=RO, json=body).json()[
        "items"
    ]
    assert items[0]["id"] == "w2"
    assert "w1" not in [i["id"] for i in items]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("POST", "/collections", {"name": "../etc"}, 400, "name"),
        ("POST", "/collections", {"name": "news"}, 409, None),
        ("GET", "/collections/missing", None, 404, None),
        (
            "POST",
            "/collections/news/search",
            {"query": "x", "where": {"a": {"$in": [[[["deep"]]]]}}},
            400,
            "where",
        ),
        ("POST", "/collections/news/search", {"query": "x", "where": {"$bogus": 1}}, 400, "where"),
        ("POST", "/collections/news/search", {"query": "x", "k": 100000}, 400, "k"),
        ("POST", "/collections/news/search", {"query": " "}, 400, "query"),
        ("POST", "/collections/news/search", {"queries": ["ok", " "]}, 400, "queries[1]"),
        ("POST", "/collections/news/items", {"texts": ["a"], "ids": ["x", "y"]}, 400, None),
    ],
)
def test_collection_errors_are_4xx(
    server: str, news: str, method: str, path: str, body: object, status: int, param: str | None
) -> None:
    r = call(server, method, path, json=body) if body is not None else call(server, method, path)
    assert r.status_code == status, r.text
    if param is not None:
        assert r.json()["error"]["param"] == param


def test_create_list_drop_is_durable(server: str, tmp_path: Path) -> None:
    assert call(server, "POST", "/collections", json={"name": "tmp-1"}).status_code == 201
    names = [c["name"] for c in call(server, "GET", "/collections", key=RO).json()["collections"]]
    assert "tmp-1" in names
    assert call(server, "DELETE", "/collections/tmp-1", key=RO).status_code == 403
    assert call(server, "DELETE", "/collections/tmp-1").json() == {"deleted": 1}
    assert call(server, "GET", "/collections/tmp-1").status_code == 404


def test_writes_survive_server_restart(embedder: Embedder, tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path)
    with ServerThread(create_app(settings, preloaded={MODEL: embedder})) as url:
        assert httpx.post(url + "/collections", json={"name": "keep"}).status_code == 201
        body = {"texts": ["kept text"], "ids": ["k1"], "metadatas": [{"n": 1}]}
        assert httpx.post(url + "/collections/keep/items", json=body, timeout=60).status_code == 200
    with Collection.open("keep", data_dir=tmp_path, embedder=embedder) as col:
        assert col.count() == 1
        assert col.get(["k1"])[0].metadata == {"n": 1}
