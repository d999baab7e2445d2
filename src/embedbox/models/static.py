"""Static embedding models (model2vec's format): a table of token vectors, no transformer.

A folder holds config.json (`"model_type": "model2vec"`), model.safetensors (`embeddings`, one
row per token id) and tokenizer.json. A text's vector is the mean of its tokens' rows (special
and unknown tokens left out, at most `max_length` tokens), L2-normalised when the config says
so: what `model2vec.StaticModel.encode` computes. `embedbox.tasks.distill` makes such folders
from a sentence model; `Embedder(folder)` loads them like any other model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedbox.errors import InputError, ModelNotFound
from embedbox.models.backends.base import Backend
from embedbox.models.text import TextEncoder, TextModelInfo

MODEL_TYPE = "model2vec"
MAX_TOKENS = 512  # model2vec's default max_length


def is_static(path: Path) -> bool:
    """Whether `path` is a static (model2vec) model folder."""
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        return False
    return _config(path).get("model_type") == MODEL_TYPE


def _config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def static_model_info(path: Path) -> TextModelInfo:
    """A static folder's info, read without loading its table."""
    from safetensors import safe_open

    config = _config(path)
    try:
        with safe_open(str(path / "model.safetensors"), "np") as f:
            _, dim = f.get_slice("embeddings").get_shape()
    except Exception as exc:  # safetensors raises several kinds for a damaged file
        raise ModelNotFound(f"cannot read the static model in {path}: {exc}") from exc
    return TextModelInfo(
        path=path,
        architecture=MODEL_TYPE,
        dim=int(dim),
        max_tokens=int(config.get("max_length") or MAX_TOKENS),
        pooling="mean",
        normalize=bool(config.get("normalize", True)),
        format="static",
    )


class StaticBackend:
    """Token states of a static model: each token's row of the table."""

    name = "static"
    compute = "fp32"
    device = torch.device("cpu")

    def __init__(self, table: np.ndarray) -> None:
        self.table = torch.from_numpy(np.ascontiguousarray(table, np.float32))

    def token_states(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.table[inputs["input_ids"]]

    def set_adapter(self, name: str) -> None:
        raise InputError("static models have no task adapters")


class StaticEncoder(TextEncoder):
    """The text path of `TextEncoder` (tokenising, truncating, chunking) over a static table:
    a text's vector is the mean row of its tokens, special and unknown tokens left out."""

    def __init__(self, info: TextModelInfo) -> None:
        from safetensors.numpy import load_file
        from transformers import PreTrainedTokenizerFast

        try:
            table = load_file(str(info.path / "model.safetensors"))["embeddings"]
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(info.path / "tokenizer.json"))
        except (OSError, KeyError, ValueError) as exc:
            raise ModelNotFound(f"cannot load the static model in {info.path}: {exc}") from exc
        vocab = tokenizer.get_vocab()
        unk = _unk_token(tokenizer)
        tokenizer.unk_token = unk
        if tokenizer.pad_token is None:
            tokenizer.pad_token = "[PAD]" if "[PAD]" in vocab else unk
        if len(table) != len(vocab):
            raise ModelNotFound(
                f"{info.path}: the table has {len(table)} rows for {len(vocab)} tokens"
            )
        self.info = info
        self.device = torch.device("cpu")
        self.adapters = {}
        self.tokenizer = tokenizer
        self._active_task = None
        self.pad_id = int(tokenizer.pad_token_id)
        self.special_prefix, self.special_suffix = self._special_tokens()
        self._types = False
        self.selection = None
        self.backend: Backend = StaticBackend(table)
        self._table = np.ascontiguousarray(table, np.float32)
        self._left_out = np.array(
            sorted({*self.special_prefix, *self.special_suffix, int(vocab[unk])}), np.int64
        )

    def embed_batch(
        self, batch: Sequence[list[int]], prompt_tokens: int = 0, backend: Backend | None = None
    ) -> np.ndarray:
        """Mean rows of each text's content tokens (zeros for a text with none)."""
        rows = [np.asarray(ids[1 + prompt_tokens :] if prompt_tokens else ids) for ids in batch]
        kept = [r[~np.isin(r, self._left_out)] for r in rows]
        out = np.zeros((len(kept), self.info.dim), np.float32)
        counts = np.array([len(k) for k in kept])
        if counts.any():
            flat = np.concatenate([k for k in kept if len(k)])
            sums = np.add.reduceat(
                self._table[flat], np.cumsum(counts[counts > 0]) - counts[counts > 0]
            )
            out[counts > 0] = sums / counts[counts > 0, None]
        return out


def _unk_token(tokenizer: Any) -> str:
    model = json.loads(tokenizer.backend_tokenizer.to_str()).get("model", {})
    return str(model.get("unk_token") or "[UNK]")
