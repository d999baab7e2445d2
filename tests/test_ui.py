"""The web explorer at /ui: its JSON routes over HTTP, then end to end in headless Chromium.

The browser tests drive Debian's /usr/bin/chromium through Playwright (nothing downloaded) against
a real server on 127.0.0.1 holding a small real collection (60 Usenet posts from gensim's
mini_newsgroup, with metadata). They save screenshots of the main views to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from embedbox import Embedder
from embedbox.datasets import mini_newsgroup
from embedbox.server import ServerSettings, create_app
from embedbox.server.auth import load_keys
from embedbox.server.runner import ServerThread
from embedbox.server.ui import describe_fields
from embedbox.store.collection import Collection

pytestmark = pytest.mark.browser

MODEL = "all-MiniLM-L6-v2"
KEY = "ui-test-key-rw-1"
CHROMIUM = Path("/usr/bin/chromium")
# Screenshots land in artifacts/ (CI keeps them); EMBEDBOX_UPDATE_SCREENSHOTS=1 refreshes the
# copies in docs/screenshots/ that the README shows.
SHOTS = Path(__file__).resolve().parents[1] / (
    "docs/screenshots" if os.environ.get("EMBEDBOX_UPDATE_SCREENSHOTS") else "artifacts/screenshots"
)
N_ITEMS = 60


def _posts() -> list[tuple[str, str, dict[str, Any]]]:
    """The first 60 posts (first 600 characters each), with group, subject and a number."""
    out = []
    for i, post in enumerate(mini_newsgroup()[:N_ITEMS]):
        subject = post.text.split("\n", 1)[0].strip()
        text = post.text[:600].strip()
        meta = {"group": post.label, "subject": subject[:80], "n": i, "reply": subject[:3] == "Re:"}
        out.append((f"post-{i:02d}", text, meta))
    return out


def _image_paths() -> list[Path]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [folder / name for name in ("astronaut.png", "coffee.png", "rocket.jpg", "chelsea.png")]


@pytest.fixture(scope="module")
def server(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ui")
    data = root / "data"
    posts = _posts()
    with Collection.open("news", MODEL, data_dir=data, create=True, embedder=embedder) as col:
        col.add([p[1] for p in posts], ids=[p[0] for p in posts], metadatas=[p[2] for p in posts])
    captions = ["an astronaut in a space suit", "a cup of coffee", "a rocket on the launch pad"]
    captions.append("a cat sitting on a rug")
    with Collection.open("photos", MODEL, data_dir=data, create=True, embedder=embedder) as col:
        metas = [{"image": str(p), "name": p.stem} for p in _image_paths()]
        col.add(captions, ids=[p.stem for p in _image_paths()], metadatas=metas)
        evil = '<b>bold</b> caption <img src=x onerror="window.pwned=1"> without a picture'
        col.add([evil], ids=["no-picture"], metadatas=[{"note": "<i>markup</i>"}])
    from embedbox.store.images import add_images, open_image_collection

    with open_image_collection("pics", data_dir=data, create=True) as col:  # EfficientNet-Lite0
        add_images(col, _image_paths())
    settings = ServerSettings(api_keys=load_keys([KEY], env=""), data_dir=data)
    with ServerThread(create_app(settings, preloaded={MODEL: embedder})) as url:
        yield url


def get(server: str, path: str, key: str | None = KEY, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(server + path, headers=headers, timeout=120, **kw)


# ---- JSON routes ---------------------------------------------------------------------------
def test_page_is_served_without_key_and_routes_need_one(server: str) -> None:
    r = httpx.get(server + "/ui", follow_redirects=True)
    assert r.status_code == 200 and "embedbox explorer" in r.text
    for asset in ("app.js", "app.css"):
        assert httpx.get(f"{server}/ui/{asset}").status_code == 200
    assert "http" not in re.sub(r"http://www\.w3\.org/2000/svg", "", r.text)  # no CDN
    r = get(server, "/ui/api/collections/news/fields", key=None)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def test_fields_describe_metadata(server: str) -> None:
    r = get(server, "/ui/api/collections/news/fields")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["info"]["count"] == N_ITEMS and body["info"]["model"] == MODEL
    assert "path" not in body["info"] and body["images"] is False
    fields = {f["name"]: f for f in body["fields"]}
    assert set(fields) == {"group", "subject", "n", "reply"}
    assert set(fields["group"]["values"]) == {"alt.atheism", "sci.space"}
    assert fields["n"]["types"] == ["number"] and fields["reply"]["types"] == ["boolean"]
    assert get(server, "/ui/api/collections/photos/fields").json()["images"] is True
    assert get(server, "/ui/api/collections/nope/fields").status_code == 404


def test_describe_fields_types_and_long_values() -> None:
    out = describe_fields([{"a": 1, "t": ["x", "y"]}, {"a": "one", "long": "z" * 200}, {}])
    by = {f["name"]: f for f in out}
    assert by["a"]["types"] == ["number", "string"] and by["a"]["count"] == 2
    assert by["t"]["values"] == ["x", "y"] and by["long"]["values"] == []


def test_map_one_point_per_item_and_sampling(server: str) -> None:
    r = get(server, "/ui/api/collections/news/map")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["total"] == m["shown"] == N_ITEMS and not m["sampled"] and m["note"] == ""
    assert len({p["id"] for p in m["points"]}) == N_ITEMS
    assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in m["points"])
    assert m["clusters"] >= 2 and m["points"][0]["metadata"]["group"]
    s = get(server, "/ui/api/collections/news/map", params={"max_points": 20}).json()
    assert s["sampled"] and s["shown"] == 20 and s["total"] == N_ITEMS
    assert "20 of 60" in s["note"]
    again = get(server, "/ui/api/collections/news/map", params={"max_points": 20}).json()
    assert [p["id"] for p in again["points"]] == [p["id"] for p in s["points"]]  # seeded


def test_map_is_cached_without_info_until_the_collection_changes(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embedbox.server.ui as ui

    posts = _posts()
    with Collection.open("grow", MODEL, data_dir=tmp_path, create=True, embedder=embedder) as col:
        col.add([p[1] for p in posts[:10]], ids=[p[0] for p in posts[:10]])
    builds: list[int] = []
    infos: list[str] = []
    build_map, info = ui.build_map, Collection.info

    def spy_build(col: Collection, *args: Any) -> dict[str, Any]:
        found: dict[str, Any] = build_map(col, *args)
        builds.append(found["total"])
        return found

    def spy_info(self: Collection) -> dict[str, Any]:
        infos.append(self.name)
        return info(self)

    monkeypatch.setattr(ui, "build_map", spy_build)
    monkeypatch.setattr(Collection, "info", spy_info)
    settings = ServerSettings(data_dir=tmp_path)
    with ServerThread(create_app(settings, preloaded={MODEL: embedder})) as url:
        first = httpx.get(url + "/ui/api/collections/grow/map", timeout=120)
        assert first.status_code == 200, first.text
        again = httpx.get(url + "/ui/api/collections/grow/map", timeout=120)
        assert again.content == first.content and builds == [10] and infos == []
        # A write by the server, then one by another connection: each gives a fresh map.
        texts = {"texts": [p[1] for p in posts[10:15]], "ids": [p[0] for p in posts[10:15]]}
        added = httpx.post(url + "/collections/grow/items", json=texts, timeout=120)
        assert added.status_code == 200, added.text
        assert httpx.get(url + "/ui/api/collections/grow/map").json()["total"] == 15
        with Collection.open("grow", data_dir=tmp_path, embedder=embedder) as other:
            other.add([posts[15][1]], ids=[posts[15][0]])
        assert httpx.get(url + "/ui/api/collections/grow/map").json()["total"] == 16
        assert httpx.get(url + "/ui/api/collections/grow/map").json()["total"] == 16
    assert builds == [10, 15, 16] and infos == []


def test_map_of_a_recreated_collection_is_fresh(embedder: Embedder, tmp_path: Path) -> None:
    """Dropped and recreated under the same name, a collection can reach the same generation:
    the map must still be of the new items."""
    posts = _posts()
    settings = ServerSettings(data_dir=tmp_path)
    with ServerThread(create_app(settings, preloaded={MODEL: embedder})) as url:
        maps = []
        for part in (posts[:10], posts[10:20]):
            made = httpx.post(url + "/collections", json={"name": "again"}, timeout=120)
            assert made.status_code == 201, made.text
            body = {"texts": [p[1] for p in part], "ids": [p[0] for p in part]}
            assert httpx.post(url + "/collections/again/items", json=body, timeout=120).is_success
            assert httpx.get(url + "/collections/again").json()["generation"] == 1
            found = httpx.get(url + "/ui/api/collections/again/map", timeout=120).json()
            maps.append({p["id"] for p in found["points"]})
            assert httpx.delete(url + "/collections/again").is_success
    assert maps == [{p[0] for p in posts[:10]}, {p[0] for p in posts[10:20]}]


def test_thumbnails_only_from_stored_paths(server: str) -> None:
    r = get(server, "/ui/api/collections/photos/items/rocket/thumbnail", params={"size": 64})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    from io import BytesIO

    from PIL import Image

    assert max(Image.open(BytesIO(r.content)).size) <= 64
    r = get(server, "/ui/api/collections/photos/items/no-picture/thumbnail")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_image"
    r = get(server, "/ui/api/collections/news/items/post-01/thumbnail")
    assert r.status_code == 404
    r = get(server, "/ui/api/collections/photos/items/..%2F..%2Fetc%2Fpasswd/thumbnail")
    assert r.status_code == 404  # an id, never a path


def test_image_collection_thumbnails_by_path_id(server: str) -> None:
    body = get(server, "/ui/api/collections/pics/fields").json()
    assert body["info"]["kind"] == "image" and body["images"] is True
    rocket = str(_image_paths()[2].resolve())
    r = get(server, f"/ui/api/collections/pics/items/{quote(rocket, safe='')}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    m = get(server, "/ui/api/collections/pics/map").json()
    assert m["shown"] == 4 and {p["id"] for p in m["points"]} == {
        str(p.resolve()) for p in _image_paths()
    }


# ---- browser -------------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (/usr/bin/chromium); `make install` installs it",
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any, server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    external: list[str] = []
    own = (server, f"blob:{server}")  # thumbnails are fetched with the key, shown as blob URLs
    pg.on("request", lambda req: None if req.url.startswith(own) else external.append(req.url))
    pg.set_default_timeout(60_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
    assert not external, f"requests outside the server: {external}"


def with_key(page: Any, server: str, query: str = "") -> None:
    page.add_init_script(f"sessionStorage.setItem('embedbox.apiKey', {KEY!r})")
    page.goto(f"{server}/ui/{query}")
    page.wait_for_selector("#col-info .facts")


def search(page: Any, query: str, mode: str = "semantic") -> list[str]:
    page.fill("#query", query)
    page.check(f"input[name=mode][value={mode}]")
    page.click("#search-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#results-status').textContent.includes('result')"
    )
    ids: list[str] = page.eval_on_selector_all("#results .hit", "els => els.map(e => e.dataset.id)")
    return ids


def shot(page: Any, name: str, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


@needs_chromium
def test_wrong_key_shows_error_then_key_form_fixes_it(page: Any, server: str) -> None:
    page.add_init_script("sessionStorage.setItem('embedbox.apiKey', 'not-the-right-key')")
    page.goto(f"{server}/ui/")
    page.wait_for_selector("#error:not([hidden])")
    text = page.text_content("#error-text")
    assert "invalid API key" in text and "API key" in text
    assert page.is_visible("#key-form")
    shot(page, "error")
    page.fill("#key-input", KEY)
    page.press("#key-input", "Enter")
    page.wait_for_selector("#col-info .facts")
    assert page.is_hidden("#error"), page.text_content("#error-text")
    assert page.evaluate("sessionStorage.getItem('embedbox.apiKey')") == KEY
    assert page.evaluate("localStorage.length") == 0  # the key stays in this tab only


@needs_chromium
def test_search_filter_more_like_this_and_recommend(page: Any, server: str) -> None:
    with_key(page, server)
    info = page.text_content("#col-info")
    assert "60" in info and MODEL in info and "group" in info
    ids = search(page, "repairing the Hubble space telescope in orbit")
    assert ids[0] == "post-04"  # "Re: HST Servicing Mission Scheduled for 11 Days"
    assert page.locator("#results .hit").first.locator("mark").count() >= 1
    assert page.locator("#results .hit .bar").count() == len(ids) == 10
    shot(page, "search")

    page.click("#filters summary")
    page.click("#add-filter")
    page.fill(".filter-row .f-field", "group")
    page.fill(".filter-row .f-value", "alt.atheism")
    ids = search(page, "repairing the Hubble space telescope in orbit")
    groups = page.eval_on_selector_all("#results .hit dl.meta", "els => els.map(e => e.innerText)")
    assert ids and "post-04" not in ids and all("alt.atheism" in g for g in groups)
    assert "(filtered)" in page.text_content("#results-status")
    page.click(".filter-row .f-remove")

    ids = search(page, "Hubble telescope servicing", mode="keyword")
    assert "post-04" in ids
    ids = search(page, "repairing the Hubble space telescope in orbit", mode="hybrid")
    assert ids[0] == "post-04"

    page.click("#results .hit:first-child .hit-open")
    page.wait_for_function(
        "document.querySelector('#neighbours-status').textContent.includes('nearest')"
    )
    assert page.text_content("#detail-title") == "post-04"
    assert "HST Servicing" in page.text_content("#detail-text")
    near = page.eval_on_selector_all("#neighbours .hit", "els => els.map(e => e.dataset.id)")
    assert len(near) == 5 and "post-04" not in near
    shot(page, "item")

    page.click("#results .hit:nth-child(1) .like")
    page.click("#results .hit:nth-child(2) .like")
    page.click("#results .hit:nth-child(3) .dislike")
    assert "Liked 2, disliked 1" in page.text_content("#rec-summary")
    liked = page.eval_on_selector_all(
        "#results .hit", "els => els.slice(0, 3).map(e => e.dataset.id)"
    )
    page.click("#recommend")
    page.wait_for_function(
        "document.querySelector('#results-status').textContent.includes('recommendations')"
    )
    recs = page.eval_on_selector_all("#results .hit", "els => els.map(e => e.dataset.id)")
    assert recs and not set(recs) & set(liked)

    page.keyboard.press("Escape")
    assert page.is_hidden("#detail")


@needs_chromium
def test_api_errors_are_shown(page: Any, server: str) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    r = httpx.post(f"{server}/collections", json={"name": "scratch"}, headers=auth, timeout=60)
    assert r.status_code == 201, r.text
    with_key(page, server, "?collection=scratch")
    assert page.input_value("#collection") == "scratch"
    httpx.delete(f"{server}/collections/scratch", headers=auth, timeout=60).raise_for_status()
    page.fill("#query", "anything")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "no collection 'scratch'" in page.text_content("#error-text")
    page.click("#error-close")
    assert page.is_hidden("#error")
    page.select_option("#collection", "news")
    page.wait_for_function("document.querySelector('#col-info').textContent.includes('60')")
    page.click("#filters summary")
    page.click("#add-filter")
    page.fill(".filter-row .f-field", "bad key!")
    page.fill(".filter-row .f-value", "x")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "invalid metadata key" in page.text_content("#error-text")


@needs_chromium
def test_map_one_mark_per_item_hover_click_and_hits(page: Any, server: str) -> None:
    with_key(page, server)
    search(page, "repairing the Hubble space telescope in orbit")
    page.click("#tab-map")
    page.wait_for_selector("#map circle.point")
    assert page.locator("#map circle.point").count() == N_ITEMS
    assert page.locator("#map circle.point.hit").count() == 10
    assert page.is_hidden("#map-note")
    page.select_option("#color-by", "group")
    legend = page.text_content("#legend")
    assert "alt.atheism" in legend and "sci.space" in legend
    fills = page.eval_on_selector_all(
        "#map circle.point", "els => new Set(els.map(e => e.getAttribute('fill'))).size"
    )
    assert fills == 2
    page.hover("#map circle.point[data-id='post-04']", force=True)
    page.wait_for_selector("#tooltip:not([hidden])")
    assert "post-04" in page.text_content("#tooltip")
    page.hover("#map circle.point[data-id='post-43']", force=True)
    page.wait_for_function("document.querySelector('#tooltip').textContent.includes('post-43')")
    shot(page, "map", full_page=True)
    page.click("#zoom-in")
    assert "scale(1.25)" in page.get_attribute("#map-points", "transform")
    page.click("#zoom-reset")
    assert "scale(1)" in page.get_attribute("#map-points", "transform")
    page.click("#map circle.point[data-id='post-04']", force=True)
    page.wait_for_function("document.querySelector('#detail-title').textContent === 'post-04'")
    assert page.is_visible("#view-search")


@needs_chromium
def test_map_of_large_collection_is_sampled_with_note(page: Any, server: str) -> None:
    with_key(page, server, "?map_points=25")
    page.click("#tab-map")
    page.wait_for_selector("#map circle.point")
    assert page.locator("#map circle.point").count() == 25
    assert "25 of 60" in page.text_content("#map-note") and page.is_visible("#map-note")


@needs_chromium
def test_compare_heat_map(page: Any, server: str) -> None:
    with_key(page, server)
    page.click("#tab-compare")
    texts = [
        "The shuttle carried the telescope into orbit.",
        "A space telescope was launched by the shuttle.",
        "Religion and belief in god were debated at length.",
    ]
    page.fill("#compare-texts", "\n".join(texts))
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#heatmap .cell")
    assert page.locator("#heatmap .cell").count() == 9
    nums = page.eval_on_selector_all("#heatmap .cell-num", "els => els.map(e => +e.textContent)")
    assert nums[0] == pytest.approx(1.0, abs=0.01)
    assert nums[1] > nums[2]  # the two space texts are closer than space vs religion
    shot(page, "compare")


@needs_chromium
def test_images_narrow_window_and_keyboard(browser: Any, server: str) -> None:
    context = browser.new_context(viewport={"width": 400, "height": 860})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        with_key(page, server, "?collection=photos")
        assert page.input_value("#collection") == "photos"
        page.keyboard.press("/")
        page.keyboard.type("a spacecraft before launch")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "document.querySelector('#results-status').textContent.includes('result')"
        )
        first = page.locator("#results .hit").first
        assert first.get_attribute("data-id") == "rocket"
        page.wait_for_function(
            "document.querySelector('#results .hit img.thumb')?.src?.startsWith('blob:')"
        )
        markup = page.locator("#results .hit[data-id='no-picture']")
        assert "<b>bold</b>" in markup.text_content() and "<i>markup</i>" in markup.text_content()
        assert markup.locator("b, i, img:not(.thumb)").count() == 0
        assert page.evaluate("window.pwned") is None  # item text is shown as text, never run
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"page scrolls sideways on a narrow window ({width}px)"
        shot(page, "narrow")
        page.focus("#tab-search")
        page.keyboard.press("ArrowRight")
        assert page.evaluate("document.activeElement.id") == "tab-map"
        page.wait_for_selector("#map circle.point")
        assert page.locator("#map circle.point").count() == 5
    finally:
        context.close()


@needs_chromium
def test_image_collection_keyword_search_and_similar_images(page: Any, server: str) -> None:
    with_key(page, server, "?collection=pics")
    assert "Image collection" in page.text_content("#col-info")
    ids = search(page, "rocket", mode="keyword")
    assert ids[0].endswith("rocket.jpg")
    page.wait_for_function(
        "document.querySelector('#results .hit img.thumb')?.src?.startsWith('blob:')"
    )
    page.click("#results .hit:first-child .hit-open")
    page.wait_for_function(
        "document.querySelector('#neighbours-status').textContent.includes('nearest')"
    )
    assert page.locator("#neighbours .hit img.thumb").count() == 3
    page.wait_for_function(
        "[...document.querySelectorAll('#detail img.thumb')].every(i => i.complete && i.src)"
    )
    shot(page, "images")
