"""Every page the server shows works offline: no script, style, font or icon from another host."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread
from tests.tiny_models import build

PAGES = ["/docs", "/redoc", "/ui/"]
EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost)[\w.-]+\.[a-z]{2,}""", re.I)


class Refs(HTMLParser):
    """Every URL a page makes the browser load: src, href, and url(...) in inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        self.inline.append(data)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tiny = str(build("bert", tmp_path_factory.mktemp("models") / "tiny"))
    settings = ServerSettings(models=(tiny,), preload=False, data_dir=tmp_path_factory.mktemp("d"))
    with ServerThread(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("page", PAGES)
def test_pages_load_nothing_from_other_hosts(server: str, page: str) -> None:
    r = httpx.get(server + page, follow_redirects=True)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    refs = Refs()
    refs.feed(r.text)
    assert refs.urls, f"{page} references no assets at all?"
    for url in refs.urls:
        assert not EXTERNAL.match(url), f"{page} loads {url}"
        asset = httpx.get(httpx.URL(str(r.url)).join(url))
        assert asset.status_code == 200, f"{page}: {url} -> {asset.status_code}"
        if url.endswith(".css"):  # fonts and images a stylesheet pulls in
            for inner in re.findall(r"url\(([^)]+)\)", asset.text):
                assert not EXTERNAL.match(inner.strip("'\" ")), f"{url} loads {inner}"
    script = "\n".join(refs.inline)
    for found in EXTERNAL.findall(script):
        pytest.fail(f"{page}'s inline script or style names {found}")


def test_the_docs_page_is_swagger_ui_on_our_schema(server: str) -> None:
    page = httpx.get(server + "/docs").text
    assert "SwaggerUIBundle" in page and "/openapi.json" in page
    assert '"validatorUrl": null' in page  # no badge from validator.swagger.io
    assert httpx.get(server + "/openapi.json").json()["info"]["title"] == "embedbox"


def test_ui_scripts_name_no_other_host() -> None:
    static = Path(__file__).parents[1] / "src" / "embedbox" / "server" / "static"
    for path in static.iterdir():
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")  # a namespace name
        assert not EXTERNAL.search(text), path.name
