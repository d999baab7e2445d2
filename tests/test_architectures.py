"""nomic-bert, jina-embeddings-v3 (task LoRA adapters) and ModernBERT through the real loader.

Real weights are not reachable here; tiny random models of each architecture are saved to a temp
folder with sentence-transformers metadata and loaded exactly as a downloaded model would be.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedbox import Embedder, InputError, ModelNotFound
from embedbox.catalog import CATALOG
from tests.tiny_models import JINA_TASKS, build

pytestmark = pytest.mark.numerics  # also run with bf16 forced (make test)

LONG = "the quick brown fox jumps over the lazy dog " * 80  # ~720 tokens


# The transformers architecture of each text model in the catalog: every one is loaded below.
CATALOG_FAMILIES = {
    "all-MiniLM-L6-v2": "bert",
    "all-mpnet-base-v2": "mpnet",
    "bge-small-en-v1.5": "bert",
    "nomic-embed-text-v1.5": "nomic_bert",
    "jina-embeddings-v3": "jina",
    "modernbert-embed-base": "modernbert",
    # A BERT exported to ONNX: its own loading path is tested in test_backends.py.
    "paraphrase-MiniLM-L3-v2": "bert",
}
FAMILIES = sorted(set(CATALOG_FAMILIES.values()))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny")
    return {kind: build(kind, base / kind) for kind in FAMILIES}


def test_catalog_families_are_all_covered() -> None:
    text_models = {spec.name for spec in CATALOG if spec.kind == "text"}
    assert text_models == set(CATALOG_FAMILIES), "add the new model's family to CATALOG_FAMILIES"


@pytest.mark.parametrize("kind", FAMILIES)
def test_every_catalog_family_loads(folders: dict[str, Path], kind: str) -> None:
    """Each family loads through the real loader with the attention its transformers class
    implements (SDPA, or eager for MPNet) and matches a plain forward pass."""
    emb = Embedder(str(folders[kind]), compute="fp32")
    assert emb.info.architecture == ("jina_embeddings_v3" if kind == "jina" else kind)
    attention = emb.encoder.model.config._attn_implementation
    assert attention == ("eager" if kind == "mpnet" else "sdpa")
    text = "every family goes through the same loader"
    task = "text-matching" if kind == "jina" else None
    got = emb.embed([text, LONG[:300]], task=task)
    want = [manual_mean(folders[kind], t, task) for t in (text, LONG[:300])]
    np.testing.assert_allclose(got, np.stack(want), atol=2e-5)


def manual_mean(path: Path, text: str, adapter: str | None = None) -> np.ndarray:
    """Reference: transformers forward + masked mean pooling + L2 normalise, no embedbox code."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path)).eval()
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path / "adapters" / adapter)).eval()
    enc = tok([text], return_tensors="pt", truncation=False)
    with torch.no_grad():
        states = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
    vec = states[0].mean(0).numpy()
    return np.asarray(vec / np.linalg.norm(vec))


@pytest.mark.parametrize("kind", ["nomic_bert", "modernbert"])
def test_prompts_pooling_and_long_inputs(folders: dict[str, Path], kind: str) -> None:
    emb = Embedder(str(folders[kind]), compute="fp32")
    assert emb.info.architecture == kind and emb.dim == 32 and emb.max_tokens == 1024
    # Inputs beyond 512 tokens are embedded whole (no truncation) and match a plain forward pass.
    result = emb.encode([LONG])
    assert result.token_counts[0] > 512 and result.truncated == []
    np.testing.assert_allclose(result.vectors[0], manual_mean(folders[kind], LONG), atol=2e-5)
    # input_type="query" applies the model's query prefix.
    query = emb.embed(["what is a fox?"], input_type="query")[0]
    prefixed = emb.embed(["search_query: what is a fox?"])[0]
    np.testing.assert_allclose(query, prefixed, atol=1e-6)
    document = emb.embed(["what is a fox?"], input_type="document")[0]
    assert float(query @ document) < 0.9999


def test_jina_task_adapters_chosen_per_call(folders: dict[str, Path]) -> None:
    emb = Embedder(str(folders["jina"]), compute="fp32")
    assert set(emb.tasks) == set(JINA_TASKS)
    text = "adapters change the vector"
    vecs = {task: emb.embed([text], task=task)[0] for task in JINA_TASKS}
    for task in JINA_TASKS:
        np.testing.assert_allclose(vecs[task], manual_mean(folders["jina"], text, task), atol=2e-5)
    assert float(vecs["retrieval.query"] @ vecs["retrieval.passage"]) < 0.99
    # input_type maps onto the retrieval adapters; switching back gives the same vector again.
    np.testing.assert_allclose(emb.embed([text], input_type="query")[0], vecs["retrieval.query"])
    np.testing.assert_allclose(emb.embed([text], task="text-matching")[0], vecs["text-matching"])
    with pytest.raises(InputError, match="unknown task 'classification'"):
        emb.embed([text], task="classification")
    long = emb.encode([LONG], task="retrieval.passage")
    assert long.token_counts[0] > 512 and long.truncated == []


def test_missing_models_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        ModelNotFound, match=r"huggingface-cli download nomic-ai/nomic-embed-text-v1\.5"
    ):
        Embedder("nomic-embed-text-v1.5")
    with pytest.raises(ModelNotFound, match="no folder at"):
        Embedder(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFound, match=r"no snapshot in the Hugging Face cache"):
        Embedder("someone/unknown-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match=r"no config\.json"):
        Embedder(str(tmp_path / "empty"))


def test_hub_name_from_existing_cache_offline(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    repo = tmp_path / "hub" / "models--acme--tiny-nomic"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    shutil.copytree(folders["nomic_bert"], snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    emb = Embedder("acme/tiny-nomic", compute="fp32")
    assert emb.info.path == snapshot
    assert emb.embed(["from the cache"]).shape == (1, 32)
