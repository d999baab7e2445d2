"""all-mpnet-base-v2, assembled from its five PyPI parts, against sentence-transformers.

110M parameters: one load per compute for the module and a few dozen texts. STS-B quality is
measured with `embedbox eval suite` (README), not here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from embedbox import Embedder
from embedbox.datasets import lee_background, sts_b
from tests.tolerance import assert_vectors_close, row_cosines

pytestmark = [pytest.mark.numerics, pytest.mark.model]


# Module-scoped, so both load (and the first assembles the parts) before any per-test data dir.
@pytest.fixture(scope="module")
def mpnet() -> Embedder:
    return Embedder("all-mpnet-base-v2", compute="fp32")


@pytest.fixture(scope="module")
def mpnet_auto(mpnet: Embedder) -> Embedder:
    return Embedder("all-mpnet-base-v2", compute="auto")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    pairs = sts_b("test")[:4]
    lee = lee_background()
    # lee[0] has 383 tokens (just inside the window); then 529 and 453 tokens (truncated).
    long = [lee[6], " ".join(lee[2:5])]
    return [p.a for p in pairs] + [p.b for p in pairs] + lee[:2] + long


@pytest.fixture(scope="module")
def reference(mpnet: Embedder, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(mpnet.info.path), device="cpu")
    # The zip has no 2_Normalize folder; sentence-transformers still adds the Normalize module.
    assert type(st[-1]).__name__ == "Normalize" and st.max_seq_length == 384
    return np.asarray(st.encode(texts, batch_size=8, convert_to_numpy=True))


def test_loads_from_the_assembled_parts(mpnet: Embedder) -> None:
    info = mpnet.info
    assert (info.architecture, info.dim, info.max_tokens, info.pooling) == (
        "mpnet",
        768,
        384,
        "mean",
    )
    assert info.normalize  # listed in modules.json, though the folder is absent
    assert mpnet.encoder.model.config._attn_implementation == "eager"
    assert info.path.name == "all-mpnet-base-v2" and (info.path / ".embedbox-asset.json").is_file()


def test_matches_sentence_transformers_including_truncated_texts(
    mpnet: Embedder, texts: list[str], reference: np.ndarray
) -> None:
    result = mpnet.encode(texts, truncate=False)
    assert result.truncated == [len(texts) - 2, len(texts) - 1]
    assert min(result.token_counts[-2:]) > 400
    cos = row_cosines(result.vectors, reference)
    assert cos.min() >= 0.99999, f"min cosine {cos.min():.7f}"
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)


def test_auto_compute_within_its_dtype_tolerance(
    mpnet_auto: Embedder, texts: list[str], reference: np.ndarray
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = mpnet_auto.embed(texts)
    assert_vectors_close(got, reference, mpnet_auto.dtype)


def test_chunked_long_text_matches_a_manual_reference(mpnet: Embedder, texts: list[str]) -> None:
    """Windows of 382 content tokens overlapping by 32, each wrapped in <s> ... </s>, mean-pooled
    and normalised, averaged by window length: computed here with transformers alone."""
    from transformers import AutoTokenizer

    text = texts[-2]
    path: Path = mpnet.info.path
    tok = AutoTokenizer.from_pretrained(str(path))
    model = mpnet.encoder.model  # the transformers module; tokens, windows and pooling are ours
    content = tok(text, add_special_tokens=False)["input_ids"]
    size, stride = 384 - 2, 384 - 2 - 32
    vectors, weights = [], []
    for start in range(0, len(content), stride):
        ids = [tok.cls_token_id, *content[start : start + size], tok.sep_token_id]
        with torch.no_grad():
            states = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        vec = states.mean(0).numpy()
        vectors.append(vec / np.linalg.norm(vec))
        weights.append(len(ids))
        if start + size >= len(content):
            break
    manual = np.average(np.stack(vectors), axis=0, weights=weights)
    manual /= np.linalg.norm(manual)
    result = mpnet.encode([text], long_text="chunk")
    assert result.chunked == {0: len(vectors)} and len(vectors) >= 2
    assert float(row_cosines(result.vectors, manual[None])[0]) >= 0.99999
