"""Static embedding tables distilled from a sentence model (the model2vec method).

Each vocabulary token is passed through the transformer on its own, between the tokenizer's
special tokens; the mean of its output states becomes that token's vector. PCA keeps `dims`
directions, and a Zipf-estimated SIF weight (common tokens count less) scales each row. A text's
vector is then the mean of its tokens' rows: no transformer at inference, hundreds of times
faster, at a cost in quality (docs/eval.md measures it).

The folder written is model2vec's format (config.json, model.safetensors with `embeddings`,
tokenizer.json), so `model2vec.StaticModel.from_pretrained` reads it too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedbox.errors import InputError, ModelNotFound
from embedbox.types import Progress

if TYPE_CHECKING:
    from embedbox.embed import Embedder

MODEL_TYPE = "model2vec"
SIF_COEFFICIENT = 1e-4
MAX_TOKENS = 512  # per text, as model2vec's default


def is_static(path: Path) -> bool:
    """Whether `path` holds a static (model2vec) model."""
    config = path / "config.json"
    if not config.is_file() or not (path / "model.safetensors").is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, json.JSONDecodeError):
        return False


@dataclass(frozen=True)
class DistillReport:
    path: Path
    vocabulary: int
    dims: int
    seconds: float


def distill(
    embedder: Embedder,
    out: str | os.PathLike[str],
    *,
    dims: int | None = 256,
    batch: int = 512,
    progress: Progress | None = None,
) -> DistillReport:
    """Distil `embedder`'s model into a static model in the folder `out` (written atomically).

    `dims`: PCA dimensions (None keeps the model's width). Compute in fp32 for a faithful table.
    """
    start = time.perf_counter()
    dest = Path(out).expanduser()
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest} exists and is not empty; choose a new folder")
    if dims is not None and not 2 <= dims <= embedder.dim:
        raise InputError(f"dims must be between 2 and {embedder.dim}, got {dims}")
    tokenizer = embedder.encoder.tokenizer
    vocab_size = len(tokenizer.get_vocab())
    head, tail = embedder.encoder.special_prefix, embedder.encoder.special_suffix
    # model2vec found the specials swapped ([SEP] token [CLS]) to work better for BERT models.
    before, after = (tail[-1:], head[:1]) if head and tail else (head, tail)
    rows = np.empty((vocab_size, embedder.dim), np.float32)
    for at in range(0, vocab_size, batch):
        ids = [[*before, t, *after] for t in range(at, min(at + batch, vocab_size))]
        rows[at : at + len(ids)] = embedder.token_states(ids).mean(axis=1)
        if progress is not None:
            progress(at + len(ids), vocab_size)
    table = _post_process(rows, dims)
    _save(dest, table, tokenizer, embedder)
    return DistillReport(dest, vocab_size, int(table.shape[1]), time.perf_counter() - start)


def _post_process(rows: np.ndarray, dims: int | None) -> np.ndarray:
    """PCA to `dims`, then SIF weights from Zipf's law (token rank ~ frequency rank)."""
    x = rows.astype(np.float64)
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    keep = vt.shape[0] if dims is None else dims
    x = x @ vt[:keep].T
    rank = np.arange(1, len(x) + 1, dtype=np.float64)
    prob = (1.0 / rank) / np.sum(1.0 / rank)
    x *= (SIF_COEFFICIENT / (SIF_COEFFICIENT + prob))[:, None]
    return x.astype(np.float32)


def _save(dest: Path, table: np.ndarray, tokenizer: Any, embedder: Embedder) -> None:
    from safetensors.numpy import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        save_file({"embeddings": np.ascontiguousarray(table)}, str(tmp / "model.safetensors"))
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        config = {
            "model_type": MODEL_TYPE,
            "architectures": ["StaticModel"],
            "tokenizer_name": embedder.name,
            "apply_pca": int(table.shape[1]),
            "apply_zipf": True,
            "sif_coefficient": SIF_COEFFICIENT,
            "hidden_dim": int(table.shape[1]),
            "normalize": True,
            "max_length": MAX_TOKENS,
            "embedbox": {"distilled_from": embedder.name, "lowercase": embedder.info.lowercase},
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class StaticModel:
    """A loaded static table: `embed(texts)` is a tokenizer call and a mean of rows."""

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            self.table = load_file(str(path / "model.safetensors"))["embeddings"]
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            raise ModelNotFound(f"cannot load the static model in {path}: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.path = path
        self.normalize = bool(config.get("normalize", True))
        self.max_tokens = int(config.get("max_length") or MAX_TOKENS)
        unk = self.tokenizer.token_to_id(_unk_token(self.tokenizer))
        self.unk_id = None if unk is None else int(unk)

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens, unknown tokens left out, truncated)."""
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [[i for i in e.ids if i != self.unk_id][: self.max_tokens] for e in encoded]

    def embed_ids(self, ids: list[list[int]]) -> np.ndarray:
        """float32 (n, dim): the mean row of each text's tokens (zeros for a text with none)."""
        out = np.zeros((len(ids), self.dim), np.float32)
        for n, row in enumerate(ids):
            if row:
                out[n] = self.table[row].mean(axis=0)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _unk_token(tokenizer: Any) -> str:
    model = json.loads(tokenizer.to_str()).get("model", {})
    return str(model.get("unk_token") or "[UNK]")
