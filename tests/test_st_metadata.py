"""sentence-transformers metadata is honoured: pooling modes, lower-casing, max length, prompts.

Each case copies the shipped MiniLM folder, edits its metadata, and compares embedbox with
sentence-transformers loading the very same folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedbox import Embedder

TEXTS = ["Hello World, HOW are You?", "A man is playing a guitar.", "short", "word " * 300]


def variant(
    base: Path, dest: Path, pooling: str, sbert: dict[str, object], st_cfg: dict[str, object]
) -> Path:
    shutil.copytree(base, dest)
    (dest / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, f"pooling_mode_{pooling}": True})
    )
    (dest / "sentence_bert_config.json").write_text(json.dumps(sbert))
    (dest / "config_sentence_transformers.json").write_text(json.dumps(st_cfg))
    return dest


@pytest.mark.parametrize(
    ("pooling", "sbert", "prompt_name"),
    [
        ("cls_token", {"max_seq_length": 128, "do_lower_case": False}, None),
        ("max_tokens", {"max_seq_length": 256, "do_lower_case": True}, None),
        ("lasttoken", {"max_seq_length": 64, "do_lower_case": False}, "query"),
    ],
)
def test_matches_sentence_transformers_on_the_same_folder(
    embedder: Embedder,
    tmp_path: Path,
    pooling: str,
    sbert: dict[str, object],
    prompt_name: str | None,
) -> None:
    from sentence_transformers import SentenceTransformer

    st_cfg = {
        "prompts": {"query": "query: ", "document": "passage: "},
        "similarity_fn_name": "cosine",
    }
    folder = variant(embedder.info.path, tmp_path / pooling, pooling, sbert, st_cfg)
    ours = Embedder(str(folder), compute="fp32")
    assert ours.info.pooling == pooling.removesuffix("_token").removesuffix("_tokens")
    assert ours.max_tokens == sbert["max_seq_length"]
    assert ours.info.lowercase == sbert["do_lower_case"]
    st = SentenceTransformer(str(folder), device="cpu")
    ref = st.encode(TEXTS, prompt_name=prompt_name, normalize_embeddings=True)
    got = ours.embed(TEXTS, prompt_name=prompt_name, truncate=False)
    cos = (np.asarray(ref) * got).sum(1)
    assert cos.min() >= 0.99999, cos
