"""The `Embedder` facade: validation, prompts, truncation policy, batching, precision, progress."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from embedbox import hardware, models
from embedbox.catalog import DEFAULT_TEXT_MODEL, ModelSpec
from embedbox.errors import DimensionsWarning, InputError, TruncationError, TruncationWarning
from embedbox.inputs import validate_texts
from embedbox.models import static
from embedbox.models.backends.select import Request, check_request
from embedbox.models.text import TextEncoder, TextModelInfo, onnx_model_info, read_model_info
from embedbox.quantize import Int8Calibration, Precision, check_precision, quantize
from embedbox.similarity import Metric, shorten, similarity_matrix
from embedbox.types import BackendName, Compute, InputType, Progress

__all__ = [
    "DTYPES",
    "DimensionsWarning",
    "EmbedResult",
    "Embedder",
    "EmbedderOptions",
    "TruncationWarning",
]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Prompt names that mean "query" / "document" across model families.
QUERY_NAMES = ("query", "search_query", "retrieval.query")
DOCUMENT_NAMES = ("document", "passage", "search_document", "retrieval.passage")


@dataclass(frozen=True)
class EmbedderOptions:
    """How to run the model; fixed for the life of an `Embedder`.

    `batch_tokens` caps the padded tokens of one forward pass (texts are length-sorted into
    batches under it, at most `max_batch_size` texts each); None picks by hardware: 2048 on a CPU
    computing in bf16, 8192 elsewhere (`hardware.auto_batch_tokens`).

    `compile=True` runs the transformer through `torch.compile` (inductor, dynamic shapes, weights
    frozen into the graph): the first embed call compiles (about a minute on a 16-core Xeon, more
    on fewer cores; inductor's on-disk cache shortens later starts), after which bf16 on 2 AMX
    cores ran 1.56x faster than eager in the same process (min cosine to sentence-transformers
    fp32 0.99989, eager bf16 0.99985). Off by default for that start-up cost. Where the backend
    cannot compile (no C++ compiler, say) it warns once and runs eager. Not for models with task
    adapters.

    `backend` runs the transformer: `torch`, `openvino` (the `openvino` extra), or `auto`, which
    times the faithful backend x compute pairs once per machine and model and reuses the cached
    winner (docs/backends.md). `compute="int8"` (openvino) is used only when it passes a
    quality gate against fp32 on held-out shipped texts, else a faithful compute with a warning.
    """

    compute: Compute = "auto"
    backend: BackendName = "auto"
    device: str | None = None
    threads: int | None = None
    batch_tokens: int | None = None
    max_batch_size: int = 128
    max_tokens: int | None = None
    chunk_overlap: int = 32
    compile: bool = False


@dataclass
class EmbedResult:
    """Vectors plus what happened on the way: token counts, truncated and chunked items."""

    vectors: np.ndarray
    token_counts: list[int] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)
    chunked: dict[int, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)


@dataclass
class _Item:
    index: int
    ids: list[int]
    prompt_tokens: int = 0


class Embedder:
    """Embed texts with one transformer model, faithful to sentence-transformers.

    >>> emb = Embedder()                       # all-MiniLM-L6-v2 from the installed package
    >>> vecs = emb.embed(["a cat", "a kitten"])  # float32 (2, 384), L2-normalised
    """

    def __init__(
        self,
        model: str = DEFAULT_TEXT_MODEL,
        options: EmbedderOptions | None = None,
        **overrides: Any,
    ) -> None:
        opts = options or EmbedderOptions()
        if overrides:
            opts = replace(opts, **overrides)
        self.options = opts
        path, spec = models.resolve(model)
        self.spec: ModelSpec | None = spec
        info = _model_info(path, spec)
        if spec is not None and not info.prompts and spec.prompts:
            info = replace(info, prompts=dict(spec.prompts))
        if spec is not None and not info.matryoshka_dims and spec.matryoshka_dims:
            info = replace(info, matryoshka_dims=spec.matryoshka_dims)
        if opts.max_tokens is not None:
            if opts.max_tokens < 8 or opts.max_tokens > info.max_tokens:
                raise InputError(f"max_tokens must be between 8 and {info.max_tokens}")
            info = replace(info, max_tokens=opts.max_tokens)
        if opts.threads is not None:
            if opts.threads < 1:
                raise InputError("threads must be at least 1")
            torch.set_num_threads(opts.threads)
        device = hardware.check_device(opts.device)
        if opts.batch_tokens is not None and opts.batch_tokens < 1:
            raise InputError("batch_tokens must be at least 1")
        request = check_request(
            Request(
                backend=opts.backend,
                compute=opts.compute,
                device=device,
                threads=opts.threads,
                compile=opts.compile,
                batch_tokens=opts.batch_tokens or 2048,
            )
        )
        self.name = spec.name if spec else str(model)
        self.encoder = (
            static.StaticEncoder(info)
            if info.format == "static"
            else TextEncoder(info, device, compile=opts.compile, request=request)
        )
        self.selection = self.encoder.selection
        self.batch_tokens = opts.batch_tokens or hardware.auto_batch_tokens(device, self.dtype)
        self.info = info
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses all cores
        self._int8: dict[int, Int8Calibration] = {}
        self._calibration_vectors: np.ndarray | None = None
        self._warned_dimensions: set[int] = set()

    # ---- properties ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def max_tokens(self) -> int:
        return self.info.max_tokens

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder.dtype

    @property
    def compute(self) -> str:
        """What the model computes in: fp32, bf16, fp16 or int8."""
        return self.encoder.backend.compute

    @property
    def backend(self) -> str:
        return self.encoder.backend.name

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.info.tasks

    def describe(self) -> dict[str, Any]:
        sel = self.selection
        return {
            "model": self.name,
            "path": str(self.info.path),
            "architecture": self.info.architecture,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "pooling": self.info.pooling,
            "normalize": self.info.normalize,
            "backend": self.backend,
            "compute": self.compute,
            "backend_choice": sel.how if sel else "asked",
            "fallback": sel.fallback if sel else "",
            "int8_gate": sel.gate.to_dict() if sel and sel.gate else None,
            "measured": dict(sel.measurements) if sel and sel.measurements else None,
            "single_text": sel.single_text if sel and sel.single_text else None,
            "device": str(self.encoder.device),
            "batch_tokens": self.batch_tokens,
            "compiled": self.encoder.compiled,
            "prompts": self.info.prompts,
            "tasks": list(self.tasks),
            "matryoshka_dims": list(self.info.matryoshka_dims),
        }

    # ---- public API ------------------------------------------------------------------
    def embed(
        self,
        texts: Sequence[str],
        *,
        prompt: str | None = None,
        prompt_name: str | None = None,
        input_type: InputType | None = None,
        task: str | None = None,
        dimensions: int | None = None,
        precision: Precision | str = "float32",
        truncate: bool | Literal["error"] = True,
        long_text: Literal["truncate", "chunk"] = "truncate",
        allow_empty: bool = False,
        normalize: bool | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Embed `texts` -> array (n, dim) of `precision` (float32 by default), L2-normalised
        when the model normalises (`normalize=False`: the pooled vectors as they are).

        Texts longer than the model's maximum are truncated with a `TruncationWarning`
        (`truncate=False`: silently, still listed in `encode(...).truncated`; `"error"`: raise),
        or embedded whole as pooled overlapping windows with `long_text="chunk"`.
        """
        return self.encode(
            texts,
            prompt=prompt,
            prompt_name=prompt_name,
            input_type=input_type,
            task=task,
            dimensions=dimensions,
            precision=precision,
            truncate=truncate,
            long_text=long_text,
            allow_empty=allow_empty,
            normalize=normalize,
            progress=progress,
        ).vectors

    def embed_one(self, text: str, **kwargs: Any) -> np.ndarray:
        """Embed one text -> 1-D vector."""
        if not isinstance(text, str):
            raise InputError(f"embed_one takes a string, got {type(text).__name__}")
        return self.embed([text], **kwargs)[0]

    def similarity(
        self, a: Sequence[str] | np.ndarray, b: Sequence[str] | np.ndarray | None = None
    ) -> np.ndarray:
        """Similarity matrix between texts (or vectors) with the model's similarity function."""
        va = a if isinstance(a, np.ndarray) else self.embed(a)
        vb = va if b is None else (b if isinstance(b, np.ndarray) else self.embed(b))
        metric: Metric = "dot" if self.info.similarity_fn == "dot" else "cosine"
        return similarity_matrix(va, vb, metric)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encoder.tokenize(validate_texts(texts, allow_empty=True))]

    def text_room(
        self,
        *,
        input_type: InputType | None = None,
        prompt: str | None = None,
        prompt_name: str | None = None,
    ) -> int:
        """Tokens left for the text itself in one forward pass: the model's maximum less its
        special tokens and the prompt these arguments choose (as `embed` would)."""
        prefix = self._choose_prompt(prompt, prompt_name, input_type)
        enc = self.encoder
        head = len(enc.content_ids(prefix)) if prefix else 0
        return self.max_tokens - len(enc.special_prefix) - len(enc.special_suffix) - head

    def token_states(self, ids: list[list[int]], task: str | None = None) -> np.ndarray:
        """Last-layer hidden states, float32 (n, longest, dim), of token id lists that already
        carry their special tokens (padding rows are zeros past each list's length)."""
        with self._lock:
            self.encoder.set_task(self._choose_task(task, None))
            states, mask = self.encoder.token_states(ids)
        return (states * mask.unsqueeze(-1).to(states.dtype)).cpu().numpy().astype(np.float32)

    def encode(
        self,
        texts: Sequence[str],
        *,
        prompt: str | None = None,
        prompt_name: str | None = None,
        input_type: InputType | None = None,
        task: str | None = None,
        dimensions: int | None = None,
        precision: Precision | str = "float32",
        truncate: bool | Literal["error"] = True,
        long_text: Literal["truncate", "chunk"] = "truncate",
        allow_empty: bool = False,
        normalize: bool | None = None,
        progress: Progress | None = None,
    ) -> EmbedResult:
        """Like `embed`, returning an `EmbedResult` with token counts and truncation info."""
        texts = validate_texts(texts, allow_empty)
        precision = check_precision(precision)
        norm = self.info.normalize if normalize is None else bool(normalize)
        if not norm and precision in ("int8", "uint8"):
            raise InputError(f"{precision} ranges are fitted on unit vectors; keep normalize on")
        if long_text not in ("truncate", "chunk"):
            raise InputError(f"long_text must be 'truncate' or 'chunk', not {long_text!r}")
        if truncate not in (True, False, "error"):
            raise InputError(f"truncate must be True, False or 'error', not {truncate!r}")
        if dimensions is not None and not 1 <= dimensions <= self.dim:
            raise InputError(f"dimensions must be between 1 and {self.dim}, got {dimensions}")
        if dimensions is not None and dimensions < self.dim:
            self._check_dimensions(dimensions)
        task = self._choose_task(task, input_type)
        prefix = self._choose_prompt(prompt, prompt_name, input_type)
        if not texts:
            empty = np.zeros((0, dimensions or self.dim), np.float32)
            return EmbedResult(quantize(empty, precision, self._calibration(precision, dimensions)))
        with self._lock:
            self.encoder.set_task(task)
            result = self._encode(texts, prefix, truncate, long_text, progress)
        vectors = shorten(result.vectors, dimensions, norm)
        result.vectors = quantize(vectors, precision, self._calibration(precision, dimensions))
        return result

    # ---- internals -------------------------------------------------------------------
    def _check_dimensions(self, dimensions: int) -> None:
        """Warn (once per size) when vectors are cut below what the model was trained for:
        a model not trained as Matryoshka loses more from truncation than one that was."""
        trained = self.info.matryoshka_dims
        if (trained and dimensions >= min(trained)) or dimensions in self._warned_dimensions:
            return
        self._warned_dimensions.add(dimensions)
        if trained:
            why = f"was trained for sizes down to {min(trained)} ({', '.join(map(str, trained))})"
        else:
            why = "was not trained for shortened vectors (no Matryoshka sizes known for it)"
        warnings.warn(
            f"{self.name} {why}; dimensions={dimensions} keeps {dimensions} of {self.dim} and may "
            "rank noticeably worse; `embedbox train --matryoshka` fine-tunes a model for it",
            DimensionsWarning,
            stacklevel=4,
        )

    def _choose_task(self, task: str | None, input_type: InputType | None) -> str | None:
        if not self.tasks:
            if task is not None:
                raise InputError(f"model {self.name!r} has no task adapters; drop task={task!r}")
            return None
        if task is None and input_type is not None:
            task = "retrieval.query" if input_type == "query" else "retrieval.passage"
        if task is None:
            task = "text-matching" if "text-matching" in self.tasks else self.tasks[0]
        if task not in self.tasks:
            raise InputError(f"unknown task {task!r}; this model offers {', '.join(self.tasks)}")
        return task

    def _choose_prompt(
        self, prompt: str | None, prompt_name: str | None, input_type: InputType | None
    ) -> str:
        if prompt is not None and prompt_name is not None:
            raise InputError("give either prompt or prompt_name, not both")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InputError("prompt must be a string")
            return prompt
        prompts = self.info.prompts
        if prompt_name is not None:
            if prompt_name not in prompts:
                known = ", ".join(sorted(prompts)) or "none"
                raise InputError(f"unknown prompt_name {prompt_name!r}; this model has: {known}")
            return prompts[prompt_name]
        if input_type is not None:
            if input_type not in ("query", "document"):
                raise InputError(f"input_type must be 'query' or 'document', not {input_type!r}")
            names = QUERY_NAMES if input_type == "query" else DOCUMENT_NAMES
            for name in names:
                if name in prompts:
                    return prompts[name]
            return ""
        if self.info.default_prompt_name:
            return prompts.get(self.info.default_prompt_name, "")
        return ""

    def _calibration(self, precision: str, dimensions: int | None = None) -> Int8Calibration | None:
        """Per-model int8 ranges, fitted on a shipped calibration corpus embedded once; truncated
        (Matryoshka) vectors are re-normalised, so each width gets its own fit."""
        if precision not in ("int8", "uint8"):
            return None
        width = dimensions or self.dim
        if width not in self._int8:
            if self._calibration_vectors is None:
                from embedbox.datasets import calibration_texts

                self._calibration_vectors = self.embed(calibration_texts())
            sample = shorten(self._calibration_vectors, width, self.info.normalize)
            self._int8[width] = Int8Calibration.fit(sample)
        return self._int8[width]

    def _prepare(
        self, texts: list[str], prefix: str, truncate: bool | Literal["error"], long_text: str
    ) -> tuple[list[_Item], EmbedResult]:
        enc = self.encoder
        limit = self.max_tokens
        ids_list = enc.tokenize([prefix + t for t in texts])
        prompt_tokens = 0
        if prefix and not self.info.include_prompt:
            prompt_tokens = len(enc.content_ids(prefix))
        result = EmbedResult(np.empty(0), token_counts=[len(i) for i in ids_list])
        items: list[_Item] = []
        for index, ids in enumerate(ids_list):
            if len(ids) <= limit:
                items.append(_Item(index, ids, prompt_tokens))
                continue
            if long_text == "chunk":
                windows = self._windows(texts[index], prefix)
                result.chunked[index] = len(windows)
                items.extend(_Item(index, w, prompt_tokens) for w in windows)
                continue
            if truncate == "error":
                raise TruncationError(
                    f"item {index} has {len(ids)} tokens, more than the model's {limit}; "
                    "shorten it, pass long_text='chunk', or allow truncation"
                )
            result.truncated.append(index)
            items.append(_Item(index, enc.truncate(ids, limit), prompt_tokens))
        return items, result

    def _windows(self, text: str, prefix: str) -> list[list[int]]:
        """Overlapping token windows covering all of `text`, each with the prompt and specials."""
        enc = self.encoder
        head = enc.content_ids(prefix) if prefix else []
        content = enc.content_ids(text)
        size = self.max_tokens - len(enc.special_prefix) - len(enc.special_suffix) - len(head)
        if size < 16:
            raise InputError("the prompt leaves too little room for text in each chunk")
        stride = max(1, size - min(self.options.chunk_overlap, size // 2))
        starts = range(0, max(len(content) - size, 0) + stride, stride)
        return [
            enc.wrap(head + content[s : s + size]) for s in starts if s < len(content) or s == 0
        ]

    def _batches(self, items: list[_Item]) -> list[list[int]]:
        """Positions in `items`, in length-sorted batches under a token budget (little padding)."""
        order = sorted(range(len(items)), key=lambda n: len(items[n].ids), reverse=True)
        batches: list[list[int]] = []
        current: list[int] = []
        for n in order:
            width = len(items[current[0] if current else n].ids)
            if current and (
                (len(current) + 1) * width > self.batch_tokens
                or len(current) >= self.options.max_batch_size
            ):
                batches.append(current)
                current = []
            current.append(n)
        if current:
            batches.append(current)
        return batches

    def _encode(
        self,
        texts: list[str],
        prefix: str,
        truncate: bool | Literal["error"],
        long_text: str,
        progress: Progress | None,
    ) -> EmbedResult:
        items, result = self._prepare(texts, prefix, truncate, long_text)
        if result.truncated and truncate is True:
            shown = ", ".join(map(str, result.truncated[:10]))
            more = "" if len(result.truncated) <= 10 else f" and {len(result.truncated) - 10} more"
            warnings.warn(
                f"{len(result.truncated)} of {len(texts)} texts exceed {self.max_tokens} tokens and "
                f"were truncated (items {shown}{more}); pass long_text='chunk' to embed all "
                "text, or truncate='error' to fail instead",
                TruncationWarning,
                stacklevel=4,
            )
        pooled = np.zeros((len(items), self.dim), dtype=np.float32)
        done = 0
        for batch in self._batches(items):
            prompt_tokens = items[batch[0]].prompt_tokens
            pooled[batch] = self.encoder.embed_batch([items[n].ids for n in batch], prompt_tokens)
            done += len(batch)
            if progress is not None:
                progress(done, len(items))
        result.vectors = _merge_chunks(pooled, items, len(texts), self.info.normalize)
        return result


def _merge_chunks(pooled: np.ndarray, items: list[_Item], n: int, normalize: bool) -> np.ndarray:
    """One vector per text: chunk vectors are averaged, weighted by their token counts."""
    if len(items) == n:
        return pooled
    out = np.zeros((n, pooled.shape[1]), dtype=np.float64)
    weight = np.zeros(n, dtype=np.float64)
    for vec, item in zip(pooled, items, strict=True):
        w = float(len(item.ids))
        v = vec / max(float(np.linalg.norm(vec)), 1e-12) if normalize else vec
        out[item.index] += w * v
        weight[item.index] += w
    return (out / weight[:, None]).astype(np.float32)


def _model_info(path: Path, spec: ModelSpec | None) -> TextModelInfo:
    if static.is_static(path):
        return static.static_model_info(path)
    if path.suffix != ".onnx":
        return read_model_info(path)
    if spec is None or spec.tokenizer_of is None:
        raise InputError(f"{path} is an ONNX file; embedbox runs ONNX models from its catalog only")
    tokenizer, _ = models.resolve(spec.tokenizer_of)
    return onnx_model_info(
        path,
        dim=spec.dim,
        max_tokens=spec.max_tokens,
        pooling="mean" if spec.pooling == "mean" else "cls",
        normalize=spec.normalize,
        tokenizer_path=tokenizer,
    )
