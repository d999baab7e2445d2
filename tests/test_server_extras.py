"""Words (real GloVe 6B 50d) and images (real EfficientNet-Lite0, scikit-image photos) over HTTP."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from embedbox import Embedder
from embedbox.images import embed_images
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread
from embedbox.store.images import add_images, open_image_collection
from embedbox.words import load_words

pytestmark = pytest.mark.model

PHOTOS = ["coffee", "chelsea", "astronaut", "rocket", "camera", "coins"]


def png(name: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Collections, including an image collection of the photos (built with the library)."""
    root = tmp_path_factory.mktemp("extras")
    photos = root / "photos"
    photos.mkdir()
    for name in PHOTOS:
        (photos / f"{name}.png").write_bytes(png(name))
    col = open_image_collection("pics", data_dir=root / "data", create=True)
    add_images(col, photos)
    col.close()
    return root


@pytest.fixture(scope="module")
def url(embedder: Embedder, folder: Path) -> Iterator[str]:
    settings = ServerSettings(data_dir=folder / "data", max_images=4, max_body_bytes=3_000_000)
    with ServerThread(create_app(settings, preloaded={"all-MiniLM-L6-v2": embedder})) as url:
        yield url


def post(url: str, path: str, body: object) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=120)


# ---- words -------------------------------------------------------------------------------
def test_words_similar_analogy_similarity_odd_one_out(url: str) -> None:
    wv = load_words()
    r = post(url, "/words/analogy", {"a": "man", "b": "king", "c": "woman", "k": 3})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "glove-6b-50d"
    assert r.json()["results"][0]["word"] == "queen"
    r = post(url, "/words/similar", {"word": "frog", "k": 5})
    got = r.json()["results"]
    expected = wv.similar("frog", 5)
    assert [g["word"] for g in got] == [e.word for e in expected]
    np.testing.assert_allclose([g["score"] for g in got], [e.score for e in expected], atol=1e-6)
    r = post(url, "/words/similarity", {"pairs": [["cat", "dog"], ["cat", "stock market"]]})
    scores = r.json()["scores"]
    assert scores == pytest.approx(
        [wv.similarity("cat", "dog"), wv.similarity("cat", "stock market")]
    )
    assert scores[0] > scores[1]
    r = post(url, "/words/odd-one-out", {"words": ["breakfast", "lunch", "dinner", "car"]})
    assert r.json()["word"] == "car"


def test_word_vectors_are_the_library_vectors_exactly(url: str) -> None:
    words = ["paris", "new york", "frog", "the", "quantum"]
    r = post(url, "/words/vectors", {"words": words})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    out = r.json()
    assert out.keys() == {"model", "dim", "vectors"}
    assert out["model"] == "glove-6b-50d" and out["dim"] == 50
    got = np.array(out["vectors"], dtype=np.float32)
    np.testing.assert_array_equal(got, load_words().embed(words))  # float32, bit for bit


def test_unknown_word_is_a_404_naming_it_with_suggestions(url: str) -> None:
    r = post(url, "/words/analogy", {"a": "man", "b": "kingg", "c": "woman"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["param"] == "b" and err["code"] == "word_not_found"
    assert "'kingg'" in err["message"] and "king" in err["message"].split("did you mean")[1]
    r = post(url, "/words/similarity", {"pairs": [["cat", "dog"], ["cat", "zzqxv"]]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "pairs[1][1]"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/words/similar", {"word": ""}, "word"),
        ("/words/similar", {"word": "cat", "k": 0}, "k"),
        ("/words/similar", {"word": "cat", "k": 5000}, "k"),
        ("/words/similar", {"word": "   "}, "word"),
        ("/words/odd-one-out", {"words": ["a", "b"]}, "words"),
        ("/words/similarity", {"pairs": [["cat"]]}, "pairs[0]"),
        ("/words/analogy", {"a": "man", "b": "king", "c": "woman", "method": "x"}, "method"),
    ],
)
def test_bad_word_requests_are_400_naming_the_field(
    url: str, path: str, body: object, param: str
) -> None:
    r = post(url, path, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


# ---- images ------------------------------------------------------------------------------
def test_images_embed_matches_the_library(url: str) -> None:
    raw = [png("coffee"), png("chelsea")]
    body = {"images": [b64(raw[0]), "data:image/png;base64," + b64(raw[1])]}
    r = post(url, "/images/embed", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out.keys() == {"model", "dim", "embeddings"}
    got = np.array(out["embeddings"], dtype=np.float32)
    assert out["model"] == "efficientnet-lite0" and out["dim"] == 1280 == got.shape[1]
    np.testing.assert_array_equal(got, embed_images(raw).vectors)  # the same cached encoder
    r = post(url, "/images/embed", {**body, "encoding_format": "base64"})
    assert r.status_code == 200 and r.json().keys() == out.keys()
    vecs = [np.frombuffer(base64.b64decode(v), "<f4") for v in r.json()["embeddings"]]
    np.testing.assert_array_equal(np.stack(vecs), got)


def test_aliases_of_one_image_model_share_one_holder(
    embedder: Embedder, folder: Path, tmp_path: Path
) -> None:
    """Two spellings of one model get one loaded encoder behind one compute lock."""
    col = open_image_collection(
        "alias", data_dir=tmp_path, model="TF_EfficientNet_Lite0", create=True
    )
    add_images(col, folder / "photos" / "coffee.png")
    col.close()
    app = create_app(ServerSettings(data_dir=tmp_path), preloaded={"all-MiniLM-L6-v2": embedder})
    with ServerThread(app) as url:
        assert post(url, "/images/embed", {"images": [b64(png("coins"))]}).status_code == 200
        r = post(url, "/collections/alias/images/similar", {"image": b64(png("coins")), "k": 1})
        assert r.status_code == 200, r.text
    assert list(app.state.image_models) == ["efficientnet-lite0"]


def test_bad_images_are_400_naming_the_item(url: str, folder: Path) -> None:
    good = b64(png("coins"))
    cases = [
        ([good, "not base64 at all!"], "images[1]"),
        ([good, b64(b"GIF89a but not really an image")], "images[1]"),
        ([str(folder / "photos" / "coffee.png")], "images[0]"),  # a server path: refused
        (["data:image/png,rawtext"], "images[0]"),
    ]
    for images, param in cases:
        r = post(url, "/images/embed", {"images": images})
        assert r.status_code == 400, (param, r.text)
        err = r.json()["error"]
        assert err["param"] == param and err["code"] == "invalid_image"
        assert err["message"].startswith(param)
    r = post(url, "/images/embed", {"images": [good] * 5})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_inputs"
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, format="PNG")  # about 1 MB: incompressible
    r = post(url, "/images/embed", {"images": [b64(out.getvalue())] * 3})  # over the body limit
    assert r.status_code == 413


def test_huge_image_is_refused_before_decoding(url: str) -> None:
    out = io.BytesIO()
    Image.new("L", (8000, 6000)).save(out, format="PNG")  # 48 M pixels, a few kB compressed
    r = post(url, "/images/embed", {"images": [b64(out.getvalue())]})
    assert r.status_code == 400
    assert "pixels" in r.json()["error"]["message"]


def test_image_collection_similar_by_id_and_by_image(url: str, folder: Path) -> None:
    coffee = str((folder / "photos" / "coffee.png").resolve())
    r = post(url, "/collections/pics/images/similar", {"id": coffee, "k": 3})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 3 and coffee not in [h["id"] for h in hits]
    # A resized JPEG copy of the cat photo finds the cat first.
    img = Image.open(io.BytesIO(png("chelsea"))).convert("RGB")
    img = img.resize((img.width // 2, img.height // 2))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=60)
    r = post(url, "/collections/pics/images/similar", {"image": b64(out.getvalue()), "k": 2})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["id"].endswith("chelsea.png")
    assert r.json()["hits"][0]["score"] > 0.8


def test_image_collection_errors(url: str) -> None:
    path = "/collections/pics/images/similar"
    r = post(url, path, {"id": "/no/such/item.png"})
    assert r.status_code == 404 and "/no/such/item.png" in r.json()["error"]["message"]
    r = post(url, path, {"id": "x", "image": b64(png("coins"))})
    assert r.status_code == 400
    r = post(url, path, {"image": "%%%"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    r = post(url, path, {"text": "a cat"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "text"
    r = post(url, "/collections/nope/images/similar", {"id": "x"})
    assert r.status_code == 404
    created = post(url, "/collections", {"name": "texts"})
    assert created.status_code == 201, created.text
    r = post(url, "/collections/texts/images/similar", {"id": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_an_image_collection"


def test_words_and_images_documented_in_openapi(url: str) -> None:
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    for path in ("/words/similar", "/words/analogy", "/words/similarity", "/words/odd-one-out",
                 "/images/embed", "/collections/{name}/images/similar"):  # fmt: skip
        assert "400" in paths[path]["post"]["responses"], path
    for path, model in (
        ("/words/vectors", "WordVectorsOut"),
        ("/images/embed", "ImageEmbeddingsOut"),
    ):
        schema = paths[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, path


def test_turned_off_models_are_404(embedder: Embedder) -> None:
    settings = ServerSettings(word_model=None, image_model=None)
    with ServerThread(create_app(settings, preloaded={"all-MiniLM-L6-v2": embedder})) as url:
        r = post(url, "/words/similar", {"word": "cat"})
        assert r.status_code == 404 and "word model" in r.json()["error"]["message"]
        r = post(url, "/images/embed", {"images": [b64(png("coins"))]})
        assert r.status_code == 404 and "image model" in r.json()["error"]["message"]
