"""The server under bad input and broken storage: always a 4xx (or 507) JSON error, never a 500,
and no server paths for clients who need not see them. A tiny random model keeps this fast."""

from __future__ import annotations

from collections.abc import Iterator
from json import dumps
from pathlib import Path
from typing import Any

import httpx
import pytest

from embedbox.server import ServerSettings, create_app
from embedbox.server.auth import load_keys
from embedbox.server.runner import ServerThread
from tests.tiny_models import build

RW, RO = "rw-key-0123456789", "ro-key-0123456789"
BAD = "broken \ud800 text"  # a lone surrogate: valid JSON, invalid Unicode


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[str]:
    tiny = str(build("bert", root / "tiny"))
    settings = ServerSettings(
        models=(tiny,),
        compute="fp32",
        data_dir=root / "data",
        api_keys=load_keys([RW, f"{RO} ro"], env=""),
        max_filter_depth=8,
    )
    with ServerThread(create_app(settings)) as url:
        r = call(url, "POST", "/collections", json={"name": "docs"})
        assert r.status_code == 201, r.text
        items = {"texts": ["a cat", "a dog"], "ids": ["c", "d"], "metadatas": [{"n": 1}, {}]}
        assert call(url, "POST", "/collections/docs/items", json=items).status_code == 200
        yield url


def call(url: str, method: str, path: str, key: str = RW, json: Any = None) -> httpx.Response:
    """A request with a JSON body written ASCII-escaped, so a lone surrogate travels as the
    JSON escape "\ud800" (which is valid JSON), as any JSON client may send it."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = None if json is None else dumps(json)
    return httpx.request(method, url + path, headers=headers, content=body, timeout=60)


@pytest.mark.parametrize(
    "method, path, body, param",
    [
        ("POST", "/v1/embeddings", {"input": BAD}, "input[0]"),
        ("POST", "/v1/embeddings", {"input": ["ok", BAD]}, "input[1]"),
        ("POST", "/embed", {"texts": [BAD]}, "texts[0]"),
        ("POST", "/similarity", {"a": ["ok", BAD]}, "a[1]"),
        ("POST", "/collections/docs/search", {"query": BAD}, "query"),
        ("POST", "/collections/docs/search", {"query": "ok", "where": {"n": BAD}}, "where"),
        ("POST", "/collections/docs/search", {"query": "ok", "where": {BAD: 1}}, "where"),
        ("POST", "/collections/docs/items", {"texts": [BAD], "ids": ["x"]}, "texts[0]"),
        ("POST", "/collections/docs/items", {"texts": ["ok"], "ids": [BAD]}, None),
        (
            "PUT",
            "/collections/docs/items",
            {"texts": ["ok"], "ids": ["x"], "metadatas": [{"k": BAD}]},
            None,
        ),
    ],
)
def test_invalid_unicode_is_a_400_naming_the_field(
    server: str, method: str, path: str, body: dict[str, Any], param: str | None
) -> None:
    r = call(server, method, path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "Unicode" in error["message"] or "invalid metadata key" in error["message"]
    if param is not None:
        assert error["param"] == param
    got = call(server, "POST", "/collections/docs/items/get", json={"ids": ["c", "d"]})
    assert got.status_code == 200  # nothing was stored that breaks reading


def test_nothing_poisoned_was_stored(server: str) -> None:
    r = call(server, "GET", "/collections/docs")
    assert r.json()["count"] == 2


def test_filter_depth_counts_objects(server: str) -> None:
    def nested(levels: int) -> dict[str, Any]:
        where: dict[str, Any] = {"n": 1}
        for _ in range(levels - 1):
            where = {"$and": [where]}
        return where

    ok = call(server, "POST", "/collections/docs/search", json={"query": "x", "where": nested(8)})
    assert ok.status_code == 200, ok.text
    deep = call(server, "POST", "/collections/docs/search", json={"query": "x", "where": nested(9)})
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "filter_too_deep"
    assert "nests 9 filter objects deep" in deep.json()["error"]["message"]
    one = call(
        server, "POST", "/collections/docs/search", json={"query": "x", "where": {"n": {"$x": 1}}}
    )
    assert one.json()["error"]["message"].startswith("where.n: unknown operator")  # one prefix


def test_paths_only_for_read_write_keys(server: str, root: Path) -> None:
    rw = call(server, "GET", "/collections", key=RW).json()["collections"]
    ro = call(server, "GET", "/collections", key=RO).json()["collections"]
    assert rw[0]["path"].startswith(str(root))
    assert ro[0].get("path") is None
    missing = call(server, "POST", "/collections/nope/search", key=RO, json={"query": "x"})
    assert missing.status_code == 404
    message = missing.json()["error"]["message"]
    assert str(root) not in message and "embedbox collection" not in message  # no CLI advice
    assert "POST /collections" in message


def test_a_damaged_collection_is_listed_marked_and_a_409(server: str, root: Path) -> None:
    from embedbox import Collection

    Collection.open("broken", "v", data_dir=root / "data", create=True, dim=4).close()
    db = root / "data" / "collections" / "broken" / "collection.db"
    db.write_bytes(b"garbage, not SQLite" * 100)
    listed = {
        c["name"]: c for c in call(server, "GET", "/collections", key=RO).json()["collections"]
    }
    assert listed["docs"]["count"] == 2
    assert "damaged" in listed["broken"]["error"] or "cannot" in listed["broken"]["error"]
    data_dir = str(root / "data")
    assert data_dir not in dumps(listed)  # not even inside the error, for a read-only key
    r = call(server, "GET", "/collections/broken", key=RO)
    assert r.status_code == 409 and r.json()["error"]["code"] == "collection_damaged", r.text
    assert "collection.db" in r.json()["error"]["message"]
    assert data_dir not in r.text
