"""CLIP and SigLIP through the real loader: tiny random models saved to a folder and loaded back.

No real CLIP/SigLIP weights are reachable here, so these tests check the plumbing: shapes,
normalisation, and that text and image vectors land in one space (their cosine is exactly what
the model's own forward pass scores), plus text-to-image search in a collection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import embedbox.models.image as image_mod
from embedbox.errors import InputError, ModelNotFound
from embedbox.models import resolve
from embedbox.models.image import ClipEncoder, load_image_encoder
from embedbox.store.images import add_images, open_image_collection, similar_images

TEXTS = ["a cup of coffee", "a cat on a sofa", "an astronaut", "a rocket launch"]
PHOTOS = ["coffee", "chelsea", "astronaut", "rocket"]
TOWER = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}


def _save_tiny(kind: str, folder: Path, positions: int = 16) -> Path:
    from transformers import (
        AutoTokenizer,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )

    torch.manual_seed(0)
    minilm, _ = resolve("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm))  # a real vocabulary for the text tower
    text = {**TOWER, "vocab_size": tokenizer.vocab_size, "pad_token_id": 0}
    vision = {**TOWER, "image_size": 32, "patch_size": 8}
    if kind == "clip":
        text |= {"max_position_embeddings": 77, "bos_token_id": 101, "eos_token_id": 102}
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    else:
        model = SiglipModel(
            SiglipConfig(
                text_config={**text, "max_position_embeddings": positions}, vision_config=vision
            )
        )
        processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["clip", "siglip"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny(request.param, tmp_path_factory.mktemp(f"tiny-{request.param}"))


def _photos() -> list[Image.Image]:
    return [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]


def test_loads_and_embeds_both_towers(tiny: Path) -> None:
    enc = load_image_encoder(str(tiny))
    assert isinstance(enc, ClipEncoder) and enc.kind == "text-image"
    assert enc.model_type in {"clip", "siglip"}
    images, texts = enc.embed_images(_photos()), enc.embed_texts(TEXTS)
    expected = 16 if enc.model_type == "clip" else 32
    assert images.shape == (4, expected) and texts.shape == (4, expected) and enc.dim == expected
    for vecs in (images, texts):
        assert vecs.dtype == np.float32
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(images[0], images[1])  # different photos, different vectors


def test_text_and_images_share_one_space(tiny: Path) -> None:
    """Our cosine(text, image) equals the model's own similarity score (logits undone)."""
    enc = load_image_encoder(str(tiny))
    assert isinstance(enc, ClipEncoder)
    ours = enc.embed_texts(TEXTS) @ enc.embed_images(_photos()).T
    pixels = enc.processor(images=_photos(), return_tensors="pt")["pixel_values"]
    padding = "max_length" if enc.model_type == "siglip" else True
    tokens = enc.tokenizer(
        TEXTS, padding=padding, truncation=True, max_length=enc.max_tokens, return_tensors="pt"
    )
    inputs = {"input_ids": tokens["input_ids"], "pixel_values": pixels}
    if enc.model_type == "clip":
        inputs["attention_mask"] = tokens["attention_mask"]
    with torch.no_grad():
        logits = enc.model(**inputs).logits_per_text
        bias = getattr(enc.model, "logit_bias", None)
        if bias is not None:
            logits = logits - bias
        theirs = (logits / enc.model.logit_scale.exp()).numpy()
    assert np.allclose(ours, theirs, atol=1e-4)


def test_text_to_image_search_in_a_collection(tiny: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, img in zip(PHOTOS, _photos(), strict=True):
        img.save(folder / f"{name}.png")
    col = open_image_collection("tiny", data_dir=tmp_path / "data", model=str(tiny), create=True)
    enc = load_image_encoder(str(tiny))
    assert col.kind == "text-image" and col.dim == enc.dim
    added = add_images(col, folder)
    assert len(added.ids) == 4
    hits = similar_images(col, "an astronaut", k=4, text=True)
    direct = enc.embed_images([Image.open(p).convert("RGB") for p in added.ids])
    scores = direct @ enc.embed_texts(["an astronaut"])[0]
    assert [h.id for h in hits] == [added.ids[i] for i in np.argsort(-scores)]
    assert hits[0].score == pytest.approx(float(scores.max()), abs=1e-4)
    col.close()


def test_errors_for_wrong_models(tmp_path: Path) -> None:
    enc = load_image_encoder()  # EfficientNet has no text tower
    with pytest.raises(InputError, match="no text tower"):
        enc.embed_texts(["a cat"])
    minilm, _ = resolve("all-MiniLM-L6-v2")
    with pytest.raises(ModelNotFound, match="text-image search needs"):
        ClipEncoder(minilm)
    with pytest.raises(ModelNotFound, match="not found"):
        load_image_encoder(str(tmp_path / "no-such-clip"))


def test_path_spellings_share_one_encoder(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Path] = []

    class Counted(ClipEncoder):
        def __init__(self, path: Path, name: str | None = None) -> None:
            built.append(path)
            super().__init__(path, name)

    monkeypatch.setattr(image_mod, "_loaded", {})
    monkeypatch.setattr(image_mod, "ClipEncoder", Counted)
    monkeypatch.chdir(tiny.parent)
    monkeypatch.setenv("HOME", str(tiny.parent))
    first = load_image_encoder(tiny.name)
    for spelling in (f"./{tiny.name}", f"~/{tiny.name}", str(tiny), Path(os.path.relpath(tiny))):
        assert load_image_encoder(spelling) is first
    assert built == [tiny.resolve()] and first.source == tiny.name
    col = open_image_collection("tiny", data_dir=tmp_path / "data", model=str(tiny), create=True)
    folder = tmp_path / "photos"
    folder.mkdir()
    _photos()[0].save(folder / "coffee.png")
    assert (
        len(add_images(col, folder, encoder=first).ids) == 1
    )  # loaded by another spelling: no Conflict
    assert len(similar_images(col, "a cup of coffee", encoder=first, k=1, text=True)) == 1
    col.close()


def test_create_collection_reads_config_not_weights(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the encoder was built")

    monkeypatch.setattr(image_mod, "_loaded", {})
    monkeypatch.setattr(ClipEncoder, "__init__", refuse)
    col = open_image_collection("tiny", data_dir=tmp_path / "data", model=str(tiny), create=True)
    expected = 16 if json.loads((tiny / "config.json").read_text())["model_type"] == "clip" else 32
    assert (col.kind, col.dim) == ("text-image", expected)
    col.close()


def test_text_length_default_when_config_json_leaves_it_out(tmp_path: Path) -> None:
    folder = _save_tiny("siglip", tmp_path / "siglip", positions=64)  # SigLIP's default length
    config = json.loads((folder / "config.json").read_text())
    del config["text_config"]["max_position_embeddings"]  # as google/siglip-base-patch16-224
    (folder / "config.json").write_text(json.dumps(config))
    enc = load_image_encoder(str(folder))
    assert isinstance(enc, ClipEncoder) and enc.max_tokens == 64
    assert enc.embed_texts(["a long text " * 40]).shape == (1, 32)
