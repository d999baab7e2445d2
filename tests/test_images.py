"""Images: EfficientNet-Lite0 rebuilt in torch with the shipped weights, inputs, search, collections."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from embedbox.cli.common import app
from embedbox.errors import Conflict, InputError, NotFound
from embedbox.images import embed_images, load_image
from embedbox.models.efficientnet import (
    Conv2dSame,
    EfficientNetLite0,
    fold_batchnorm,
    load_state,
    map_keys,
)
from embedbox.models.image import (
    EfficientNetEncoder,
    Label,
    efficientnet_weights,
    load_image_encoder,
)
from embedbox.store.images import add_images, open_image_collection, similar_images

pytestmark = pytest.mark.model

PHOTOS = ["coffee", "chelsea", "astronaut", "rocket", "hubble_deep_field", "logo",
          "retina", "camera", "coins", "immunohistochemistry"]  # fmt: skip
runner = CliRunner()


@pytest.fixture(scope="module")
def encoder() -> EfficientNetEncoder:
    enc = load_image_encoder()
    assert isinstance(enc, EfficientNetEncoder)
    return enc


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten scikit-image photos saved as PNG files."""
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).convert("RGB").save(folder / f"{name}.png")
    return folder


def _altered(path: Path) -> bytes:
    """A resized (60%), cropped (10% off each side) and JPEG re-encoded (quality 50) copy."""
    img = Image.open(path).convert("RGB")
    img = img.resize((int(img.width * 0.6), int(img.height * 0.6)), Image.Resampling.BILINEAR)
    dx, dy = img.width // 10, img.height // 10
    img = img.crop((dx, dy, img.width - dx, img.height - dy))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=50)
    return out.getvalue()


def test_weights_map_to_timm_names_and_load_strictly() -> None:
    state = torch.load(efficientnet_weights(), map_location="cpu", weights_only=True)
    mapped = map_keys(state)
    assert set(mapped) == set(EfficientNetLite0().state_dict())
    assert mapped["blocks.1.0.conv_pw.weight"].shape == (96, 16, 1, 1)
    assert mapped["blocks.0.0.conv_pw.weight"].shape == (16, 32, 1, 1)
    assert mapped["classifier.weight"].shape == (1000, 1280)
    model = load_state(efficientnet_weights())
    assert torch.equal(model.conv_head.weight, state["_conv_head.weight"])


def test_same_padding_is_tensorflow_style() -> None:
    conv = Conv2dSame(1, 1, 3, 2, bias=False)
    x = torch.randn(1, 1, 224, 224)
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)  # TF pads after only
    assert conv(x).shape == (1, 1, 112, 112)
    assert torch.allclose(conv(x), expected)


def test_folded_batchnorm_gives_the_same_features() -> None:
    model = load_state(efficientnet_weights())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        a = model.features(x)
        b = fold_batchnorm(model).features(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-3) and float((a - b).abs().max()) < 1e-3


def test_imagenet_classes_for_shipped_photos(encoder: EfficientNetEncoder) -> None:
    coffee, cat = encoder.classify([load_image(data.coffee()), load_image(data.chelsea())], k=3)
    assert coffee[0].label in {"espresso", "cup", "coffee mug"} and coffee[0].score > 0.5
    assert cat[0].label in {"tabby", "tiger cat", "Egyptian cat"}
    assert [x.score for x in coffee] == sorted((x.score for x in coffee), reverse=True)


def test_every_input_kind_gives_the_same_vector(encoder: EfficientNetEncoder, photos: Path) -> None:
    path = photos / "coffee.png"
    raw = path.read_bytes()
    arr = np.asarray(Image.open(path))
    b64 = base64.b64encode(raw).decode()
    inputs = [str(path), path, Image.open(path), arr, arr.astype(np.float32) / 255.0,
              np.moveaxis(arr, -1, 0), raw, b64, "data:image/png;base64," + b64]  # fmt: skip
    result = embed_images(inputs, encoder)
    assert result.vectors.shape == (9, 1280) and result.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(result.vectors, result.vectors[0], atol=1e-4)
    assert result.names[0] == str(path) and result.names[6] == "item 6"
    gray = embed_images([data.camera()], encoder).vectors  # 2-D grayscale array
    assert gray.shape == (1, 1280)


def test_bad_inputs_name_the_item(encoder: EfficientNetEncoder, tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.jpg: not a readable image"):
        embed_images([str(fake)], encoder)
    with pytest.raises(NotFound, match="no such file"):
        embed_images([str(tmp_path / "missing.png")], encoder)
    with pytest.raises(InputError, match="unsupported image input int"):
        load_image(42)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="shape"):
        load_image(np.zeros((2, 3, 4, 5)))
    Image.fromarray(data.coffee()).save(tmp_path / "good.png")
    result = embed_images([str(tmp_path)], encoder)  # folder mode: skip and report
    assert [Path(n).name for n in result.names] == ["good.png"]
    assert len(result.skipped) == 1 and result.skipped[0].item.endswith("notes.jpg")
    assert "not a readable image" in result.skipped[0].reason


def test_altered_copy_finds_its_original(encoder: EfficientNetEncoder, photos: Path) -> None:
    originals = embed_images([str(photos)], encoder)
    names = [Path(n).stem for n in originals.names]
    copies = embed_images([_altered(photos / f"{n}.png") for n in names], encoder).vectors
    sims = copies @ originals.vectors.T
    assert (sims.argmax(axis=1) == np.arange(len(names))).all()
    others = sims[~np.eye(len(names), dtype=bool)]
    assert float(np.diag(sims).min()) > float(others.max()) + 0.15  # measured: 0.63 vs ~0.3


@pytest.mark.slow
def test_lfw_faces_vs_non_faces_leave_one_out_knn(encoder: EfficientNetEncoder) -> None:
    faces = data.lfw_subset()  # 100 faces then 100 non-faces, 25x25 grayscale in [0, 1]
    labels = np.array([1] * 100 + [0] * 100)
    vecs = embed_images(list(faces), encoder).vectors
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argsort(-sims, axis=1)[:, :5]
    acc1 = float((labels[nearest[:, 0]] == labels).mean())
    acc5 = float(((labels[nearest].mean(axis=1) > 0.5) == labels).mean())
    assert acc1 >= 0.95 and acc5 >= 0.95, (acc1, acc5)  # measured: 0.995 and 0.995 (chance 0.5)


def test_image_collection_similar_by_image_and_id(
    encoder: EfficientNetEncoder, photos: Path, tmp_path: Path
) -> None:
    (photos.parent / "broken").mkdir(exist_ok=True)
    folder = tmp_path / "album"
    folder.mkdir()
    for p in sorted(photos.glob("*.png"))[:6]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "readme.png").write_text("oops")
    col = open_image_collection("album", data_dir=tmp_path / "data", create=True)
    assert col.kind == "image" and col.dim == 1280
    seen: list[tuple[int, int]] = []
    added = add_images(
        col, folder, encoder=encoder, progress=lambda d, t: seen.append((d, t)), batch=4
    )
    assert len(added.ids) == 6 and [Path(s.item).name for s in added.skipped] == ["readme.png"]
    assert seen[-1] == (7, 7) and len(col) == 6
    first = added.ids[0]
    item = col.get([first])[0]
    assert item.text == first and item.metadata["width"] > 0 and item.metadata["path"] == first
    for target in added.ids:
        hits = similar_images(col, _altered(Path(target)), encoder=encoder, k=3)
        assert hits[0].id == target  # an altered copy finds its original first
    by_id = similar_images(col, first, encoder=encoder, k=3)
    assert first not in [h.id for h in by_id] and len(by_id) == 3
    again = add_images(
        col, folder, encoder=encoder
    )  # re-adding a folder replaces, never duplicates
    assert len(again.ids) == 6 and len(col) == 6
    with pytest.raises(Conflict):
        add_images(col, folder, encoder=_OtherEncoder())
    col.close()


class _OtherEncoder(EfficientNetEncoder):
    def __init__(self) -> None:
        self.name, self.dim = "other-model", 1280


def test_cli_images_embed_classify_similar(photos: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["images", "classify", str(photos / "coffee.png"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["labels"][0]["label"] in {"espresso", "cup", "coffee mug"}
    out = tmp_path / "vecs.npy"
    result = runner.invoke(app, ["images", "embed", str(photos), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["count"] == len(PHOTOS) and np.load(out).shape[1] == 1280
    query = tmp_path / "query.jpg"
    query.write_bytes(_altered(photos / "rocket.png"))
    result = runner.invoke(app, ["images", "similar", str(query), "--in", str(photos), "--json"])
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)[0]["image"]).name == "rocket.png"


def test_cli_add_images_then_similar_by_id(photos: Path, tmp_path: Path) -> None:
    from embedbox.cli.images_cmd import run_add_images

    data_dir = tmp_path / "data"
    summary = run_add_images("pics", [photos], data_dir=data_dir, as_json=False)
    assert summary["added"] == len(PHOTOS) and summary["count"] == len(PHOTOS)
    target = str((photos / "coffee.png").resolve())
    args = ["images", "similar", "--collection", "pics", "--data-dir", str(data_dir), "-k", "3"]
    result = runner.invoke(app, [*args, "--id", target, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 3 and target not in [r["id"] for r in rows]  # by id: itself left out
    # the same path as QUERY is an image file: its own copy in the collection comes first
    result = runner.invoke(app, [*args, target, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["id"] == target
    text_col = runner.invoke(app, ["images", "similar", "x", "--collection", "nope",
                                   "--data-dir", str(data_dir)])  # fmt: skip
    assert text_col.exit_code != 0


def _album(photos: Path, folder: Path) -> Path:
    """Four photos and one corrupt file in the middle of the sorted order."""
    folder.mkdir()
    for name, photo in zip("abde", PHOTOS[:4], strict=True):
        (folder / f"{name}.png").write_bytes((photos / f"{photo}.png").read_bytes())
    (folder / "c.png").write_text("not an image")
    return folder


def test_embed_images_streams_in_batches(
    encoder: EfficientNetEncoder, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embedbox.images as images_mod

    folder = _album(photos, tmp_path / "album")
    events: list[str | int] = []  # "decode" per image read, then the size of each embed call
    load, embed = images_mod.load_image, encoder.embed_images

    def spy_load(item: object, name: str = "image") -> Image.Image:
        events.append("decode")
        return load(item, name)

    def spy_embed(images: list[Image.Image], **kw: object) -> np.ndarray:
        events.append(len(images))
        return embed(images)

    whole = embed_images([str(folder)], encoder)
    monkeypatch.setattr(images_mod, "load_image", spy_load)
    monkeypatch.setattr(encoder, "embed_images", spy_embed)
    seen: list[tuple[int, int]] = []
    parts = embed_images([str(folder)], encoder, progress=lambda *a: seen.append(a), batch=2)
    assert events == ["decode", "decode", 2, "decode", "decode", 1, "decode", 1]
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert parts.names == whole.names
    assert [Path(n).name for n in parts.names] == ["a.png", "b.png", "d.png", "e.png"]
    assert parts.skipped == whole.skipped
    assert [Path(s.item).name for s in parts.skipped] == ["c.png"]
    assert parts.vectors.shape == (4, 1280) and parts.vectors.dtype == np.float32
    assert np.allclose(parts.vectors, whole.vectors, atol=1e-5)
    with pytest.raises(InputError, match=r"c\.png: not a readable image"):  # named: still raises
        embed_images([str(folder / "a.png"), str(folder / "c.png")], encoder, batch=1)
    skip = embed_images([str(folder / "c.png"), str(folder)], encoder, on_error="skip", batch=2)
    assert [Path(s.item).name for s in skip.skipped] == ["c.png", "c.png"]
    assert skip.names == whole.names and np.allclose(skip.vectors, whole.vectors, atol=1e-5)
    for bad in (0, -1, 2.5, "2"):
        with pytest.raises(InputError, match="batch must be a positive integer"):
            embed_images([str(folder)], encoder, batch=bad)  # type: ignore[arg-type]


@pytest.mark.numerics
def test_cli_classify_streams_in_batches(
    encoder: EfficientNetEncoder, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embedbox.images as images_mod

    folder = _album(photos, tmp_path / "album")
    args = ["images", "classify", str(folder), str(photos / "rocket.png"), "--json"]
    whole = runner.invoke(app, args)
    assert whole.exit_code == 0, whole.output
    sizes: list[int] = []
    classify, batches = encoder.classify, images_mod.image_batches

    def spy_classify(images: list[Image.Image], k: int = 5) -> list[list[Label]]:
        sizes.append(len(images))
        return classify(images, k=k)

    monkeypatch.setattr(encoder, "classify", spy_classify)
    monkeypatch.setattr(images_mod, "image_batches", lambda items: batches(items, batch=2))
    parts = runner.invoke(app, args)
    assert parts.exit_code == 0, parts.output
    assert sizes == [2, 1, 2]  # inputs a, b | c (unreadable), d | e, rocket
    rows, want = json.loads(parts.stdout), json.loads(whole.stdout)
    # Convolutions pick kernels by batch size: probabilities (printed to 4 places) agree to
    # float32 rounding, not bit for bit.
    assert [r["image"] for r in rows] == [r["image"] for r in want]
    for got, ref in zip(rows, want, strict=True):
        assert [x["label"] for x in got["labels"]] == [x["label"] for x in ref["labels"]]
        np.testing.assert_allclose(
            [x["score"] for x in got["labels"]], [x["score"] for x in ref["labels"]], atol=2e-4
        )
    assert [Path(r["image"]).name for r in rows] == [*(f"{c}.png" for c in "abde"), "rocket.png"]
    assert "skipped" in parts.stderr and "c.png" in parts.stderr


def test_image_model_aliases_share_one_encoder(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embedbox.models.image as image_mod

    built: list[Path] = []

    class Counted(EfficientNetEncoder):
        def __init__(self, weights: Path, name: str = "efficientnet-lite0") -> None:
            built.append(weights)
            super().__init__(weights, name)

    monkeypatch.setattr(image_mod, "_loaded", {})
    monkeypatch.setattr(image_mod, "EfficientNetEncoder", Counted)
    first = load_image_encoder("efficientnet-lite0")
    assert load_image_encoder("tf_efficientnet_lite0") is first
    assert load_image_encoder("EfficientNet-Lite0") is first and len(built) == 1
    assert first.source == "efficientnet-lite0"  # the first caller's name, never overwritten
    monkeypatch.chdir(efficientnet_weights().parent)
    pth = load_image_encoder(efficientnet_weights())
    assert load_image_encoder(efficientnet_weights().name) is pth and len(built) == 2
    col = open_image_collection(
        "tf", data_dir=tmp_path / "data", model="tf_efficientnet_lite0", create=True
    )
    assert (
        len(add_images(col, photos / "coffee.png", encoder=first).ids) == 1
    )  # an alias: no Conflict
    with pytest.raises(InputError, match="batch must be a positive integer"):
        add_images(col, photos, encoder=first, batch=0)
    col.close()


@pytest.mark.parametrize("which", ["efficientnet-lite0", "pth"])
def test_create_image_collection_loads_no_weights(
    which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embedbox.models.image as image_mod

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder was built")

    model = which if which != "pth" else str(efficientnet_weights())
    monkeypatch.setattr(image_mod, "_loaded", {})
    monkeypatch.setattr(EfficientNetEncoder, "__init__", refuse)
    col = open_image_collection("new", data_dir=tmp_path / "data", model=model, create=True)
    assert (col.kind, col.dim, col.model) == ("image", 1280, model)
    col.close()
