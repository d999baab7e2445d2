"""A drop-in for sentence-transformers' inference API, computed by embedbox.

    from embedbox.integrations.st_compat import SentenceTransformer   # was: from sentence_transformers

    model = SentenceTransformer("all-MiniLM-L6-v2")
    model.encode("one sentence")                   # 1-D float32 array, as sentence-transformers
    model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_tensor=True)
    model.similarity(a, b)                         # torch tensor, the model's similarity function

`encode` follows sentence-transformers 5/6: the same keywords, prompt resolution (`prompt` over
`prompt_name` over `default_prompt_name`), `truncate_dim` without re-normalising,
`normalize_embeddings` after it, `precision` quantised as sentence-transformers does (int8 /
uint8 ranges from the batch itself), and the same return types. `batch_size` is validated but
embedbox batches by token budget, which does not change the vectors. Texts longer than
`max_seq_length` are truncated, as in sentence-transformers, with embedbox's `TruncationWarning`.
No extra is needed: this uses only torch and numpy, never sentence-transformers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.embed import Embedder
from embedbox.errors import InputError
from embedbox.types import Compute, InputType

__all__ = ["SentenceTransformer"]

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
SIMILARITIES = ("cosine", "dot", "euclidean", "manhattan")
# sentence-transformers constructor arguments that change nothing about the vectors here.
_HARMLESS = {
    "cache_folder",
    "local_files_only",
    "token",
    "use_auth_token",
    "trust_remote_code",
    "revision",
    "model_card_data",
    "backend",
}


class SentenceTransformer:
    """`sentence_transformers.SentenceTransformer` for inference, on an embedbox `Embedder`.

    `compute`: embedbox's compute dtype ("auto" = bf16 on CPUs with native bf16, else fp32;
    "fp32" for sentence-transformers' exact numbers). `embedder`: wrap a loaded `Embedder`.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        device: str | None = None,
        *,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | None = None,
        truncate_dim: int | None = None,
        compute: Compute = "auto",
        embedder: Embedder | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = set(kwargs) - _HARMLESS
        if unknown:
            raise InputError(
                f"SentenceTransformer: argument(s) {', '.join(sorted(unknown))} are not supported "
                "by embedbox's adapter"
            )
        if kwargs.get("backend", "torch") != "torch":
            raise InputError("embedbox's adapter runs the torch backend only")
        self._embedder = embedder or Embedder(
            model_name_or_path or DEFAULT_TEXT_MODEL, compute=compute, device=device
        )
        info = self._embedder.info
        merged: dict[str, str | None] = {"query": None, "document": None, **(prompts or {})}
        for name, text in info.prompts.items():
            if merged.get(name) is None:
                merged[name] = text
        self.prompts: dict[str, str] = {k: v or "" for k, v in merged.items()}
        self.default_prompt_name = default_prompt_name or info.default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise InputError(
                f"default_prompt_name {self.default_prompt_name!r} is not one of the prompts "
                f"{sorted(self.prompts)}"
            )
        self.similarity_fn_name = similarity_fn_name or info.similarity_fn
        self.truncate_dim = truncate_dim

    # ---- attributes code relies on ---------------------------------------------------------
    @property
    def similarity_fn_name(self) -> str:
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        value = str(getattr(value, "value", value))  # a SimilarityFunction enum member works too
        if value not in SIMILARITIES:
            raise InputError(f"similarity_fn_name must be one of {', '.join(SIMILARITIES)}")
        self._similarity_fn_name = value

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def device(self) -> torch.device:
        return self._embedder.encoder.device

    @property
    def tokenizer(self) -> Any:
        return self._embedder.encoder.tokenizer

    @property
    def max_seq_length(self) -> int:
        return self._embedder.max_tokens

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        """Reloads the model with the new window (embedbox's options are fixed per `Embedder`)."""
        if value != self.max_seq_length:
            emb = self._embedder
            options = replace(emb.options, max_tokens=value)
            self._embedder = Embedder(emb.name, options)

    def get_embedding_dimension(self) -> int:
        dim = self._embedder.dim
        return dim if self.truncate_dim is None else min(dim, self.truncate_dim)

    get_sentence_embedding_dimension = get_embedding_dimension

    def get_max_seq_length(self) -> int:
        return self.max_seq_length

    @contextlib.contextmanager
    def truncate_sentence_embeddings(self, truncate_dim: int | None) -> Iterator[None]:
        original, self.truncate_dim = self.truncate_dim, truncate_dim
        try:
            yield
        finally:
            self.truncate_dim = original

    truncate_embeddings = truncate_sentence_embeddings

    def eval(self) -> SentenceTransformer:
        return self

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="pt",
            )
        )

    def __repr__(self) -> str:
        return f"SentenceTransformer({self._embedder.name!r}, embedbox, {self._embedder.dtype})"

    # ---- encoding ---------------------------------------------------------------------------
    def encode(
        self,
        sentences: str | Sequence[str] | np.ndarray | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Embed one text (-> 1-D) or a batch (-> 2-D numpy array; a tensor with
        `convert_to_tensor`; a list of 1-D tensors with `convert_to_numpy=False`)."""
        if sentences is None:
            sentences = kwargs.pop("inputs", None)
        task = kwargs.pop("task", None)
        if kwargs:
            raise InputError(
                f"encode() got keyword argument(s) this model does not use: {sorted(kwargs)}"
            )
        if output_value != "sentence_embedding":
            raise InputError(
                "embedbox's adapter returns sentence embeddings only; for per-token vectors use "
                "embedbox.tokens (`embedbox tokens --words`)"
            )
        if pool is not None or chunk_size is not None or isinstance(device, list):
            raise InputError("multi-process encoding is not supported; embedbox batches in-process")
        if device is not None and torch.device(device) != self.device:
            raise InputError(
                f"this model runs on {self.device}; load it with device={str(device)!r} instead"
            )
        if batch_size <= 0:
            raise InputError(f"batch_size must be a positive integer, got {batch_size}")
        if precision not in PRECISIONS:
            raise InputError(f"precision {precision!r} is not supported; use one of {PRECISIONS}")
        if convert_to_tensor:
            convert_to_numpy = False
        single = isinstance(sentences, str)
        texts = _as_texts(sentences)
        truncate_dim = truncate_dim if truncate_dim is not None else self.truncate_dim

        vectors = self._vectors(
            texts, self._resolve_prompt(prompt, prompt_name), task, show_progress_bar
        )
        if truncate_dim is not None:
            vectors = vectors[:, :truncate_dim]
        if normalize_embeddings:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        if len(vectors) and precision != "float32":
            vectors = quantize_like_st(vectors, precision)

        out: Any
        if convert_to_tensor:
            out = torch.from_numpy(vectors).to(self.device) if len(vectors) else torch.tensor([])
        elif convert_to_numpy:
            out = vectors if len(vectors) else np.array([])
        else:
            out = [torch.from_numpy(v).to(self.device) for v in vectors]
        return out[0] if single else out

    def encode_query(self, sentences: Any = None, **kwargs: Any) -> Any:
        """`encode` with the model's "query" prompt (unless one is given)."""
        if (
            kwargs.get("prompt_name") is None
            and kwargs.get("prompt") is None
            and "query" in self.prompts
        ):
            kwargs["prompt_name"] = "query"
        return self.encode(sentences, task="query", **kwargs)

    def encode_document(self, sentences: Any = None, **kwargs: Any) -> Any:
        """`encode` with the model's "document" prompt (unless one is given)."""
        if kwargs.get("prompt_name") is None and kwargs.get("prompt") is None:
            for name in ("document", "passage", "corpus"):
                if name in self.prompts:
                    kwargs["prompt_name"] = name
                    break
        return self.encode(sentences, task="document", **kwargs)

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        """Matrix of `similarity_fn_name` scores between every row of `a` and of `b`."""
        x, y = _batch(a), _batch(b)
        name = self.similarity_fn_name
        if name == "cosine":
            x = torch.nn.functional.normalize(x, p=2, dim=1)
            y = torch.nn.functional.normalize(y, p=2, dim=1)
        if name in ("cosine", "dot"):
            return x @ y.T
        return -torch.cdist(x, y, p=2.0 if name == "euclidean" else 1.0)

    def similarity_pairwise(self, a: Any, b: Any) -> torch.Tensor:
        """Scores between `a[i]` and `b[i]`."""
        x, y = _batch(a), _batch(b)
        name = self.similarity_fn_name
        if name == "cosine":
            x = torch.nn.functional.normalize(x, p=2, dim=1)
            y = torch.nn.functional.normalize(y, p=2, dim=1)
        if name in ("cosine", "dot"):
            return (x * y).sum(dim=-1)
        return -torch.linalg.vector_norm(x - y, ord=2 if name == "euclidean" else 1, dim=-1)

    # ---- internals --------------------------------------------------------------------------
    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str:
        if prompt is not None:
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise InputError(
                    f"prompt_name {prompt_name!r} not found; this model has {sorted(self.prompts)}"
                )
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name, "")
        return ""

    def _vectors(
        self, texts: list[str], prompt: str, task: str | None, show_progress_bar: bool | None
    ) -> np.ndarray:
        emb = self._embedder
        input_type: InputType | None = None
        chosen: str | None = None
        if emb.tasks:  # task adapters (jina v3): sentence-transformers' task names map here
            if task in ("query", "document"):
                input_type = "query" if task == "query" else "document"
            else:
                chosen = task
        progress: Callable[[int, int], None] | None = None
        bar = None
        if show_progress_bar and texts:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="Batches")

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

        try:
            vectors = emb.embed(
                texts,
                prompt=prompt,
                input_type=input_type,
                task=chosen,
                allow_empty=True,
                progress=progress,
            )
        finally:
            if bar is not None:
                bar.close()
        return np.asarray(vectors, np.float32)


def quantize_like_st(vectors: np.ndarray, precision: str) -> np.ndarray:
    """sentence-transformers' `quantize_embeddings`: int8/uint8 with per-dimension ranges taken
    from these vectors, binary/ubinary as packed sign bits."""
    if precision in ("int8", "uint8"):
        if len(vectors) == 1:
            raise InputError(
                f"{precision} ranges cannot be computed from a single embedding; encode a "
                "batch, or use embedbox's Embedder(precision=...) with its calibrated ranges"
            )
        starts = vectors.min(axis=0)
        steps = (vectors.max(axis=0) - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((vectors - starts) / steps), 0, 255)
        return buckets.astype(np.uint8) if precision == "uint8" else (buckets - 128).astype(np.int8)
    packed = np.packbits(vectors > 0, axis=-1)
    return (packed - 128).astype(np.int8) if precision == "binary" else packed


def _as_texts(sentences: Any) -> list[str]:
    if isinstance(sentences, str):
        return [sentences]
    if isinstance(sentences, np.ndarray):
        return list(sentences.tolist())
    if sentences is None:
        raise InputError("encode() needs sentences: a string or a list of strings")
    return list(sentences)


def _batch(a: Any) -> torch.Tensor:
    if isinstance(a, list) and a and all(isinstance(x, torch.Tensor) for x in a):
        t = torch.stack(a)
    elif isinstance(a, list) and a and all(isinstance(x, np.ndarray) for x in a):
        t = torch.from_numpy(np.stack(a))
    else:
        t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a)
    t = t.float()
    return t.unsqueeze(0) if t.dim() == 1 else t
