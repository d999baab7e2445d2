"""Transformer text encoders loaded from a local folder through transformers' native classes.

Reads sentence-transformers metadata (modules.json, 1_Pooling/config.json, sentence_bert_config.json,
config_sentence_transformers.json) so that a folder behaves exactly as sentence-transformers would
load it: same tokenisation, same truncation length, same pooling, same normalisation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from embedbox.errors import InputError, ModelNotFound
from embedbox.models.backends.base import Backend
from embedbox.models.backends.build import Request, Selection
from embedbox.models.backends.torch import TorchBackend, adapter_name, load_model, with_adapters

Pooling = Literal["mean", "cls", "max", "lasttoken"]
POOLINGS: tuple[Pooling, ...] = ("mean", "cls", "max", "lasttoken")
# Architectures that need an explicit task for each call (adapters picked per call).
TASK_ADAPTER_DIRS = ("adapters", "lora")
COMPUTE_DTYPES = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "int8": torch.int8,
}


@dataclass(frozen=True)
class TextModelInfo:
    """What a model folder says about how to embed with it."""

    path: Path
    architecture: str
    dim: int
    max_tokens: int
    pooling: Pooling
    normalize: bool
    lowercase: bool = False
    include_prompt: bool = True
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn: str = "cosine"
    tasks: tuple[str, ...] = ()
    format: Literal["transformers", "onnx", "static"] = "transformers"
    tokenizer_path: Path | None = None  # where the tokenizer lives when not beside the weights
    matryoshka_dims: tuple[int, ...] = ()  # sizes the model was trained for (largest first)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelNotFound(f"cannot read {path}: {exc}; the model folder looks damaged") from exc
    return data if isinstance(data, dict) else {}


def _pooling_from_config(cfg: dict[str, Any]) -> tuple[Pooling, bool]:
    if mode := cfg.get("pooling_mode"):
        name = {"mean": "mean", "cls": "cls", "max": "max", "lasttoken": "lasttoken"}.get(mode)
        if name is None:
            raise ModelNotFound(f"unsupported pooling mode {mode!r}; supported: {POOLINGS}")
        return name, bool(cfg.get("include_prompt", True))  # type: ignore[return-value]
    flags: list[tuple[str, Pooling]] = [
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_mean_tokens", "mean"),
        ("pooling_mode_max_tokens", "max"),
        ("pooling_mode_lasttoken", "lasttoken"),
    ]
    chosen = [name for key, name in flags if cfg.get(key)]
    if len(chosen) > 1:
        raise ModelNotFound(f"combined pooling modes {chosen} are not supported")
    return (chosen[0] if chosen else "mean"), bool(cfg.get("include_prompt", True))


def _task_adapters(path: Path) -> dict[str, Path]:
    """Task name -> PEFT adapter folder, for folders that carry per-task LoRA adapters."""
    found: dict[str, Path] = {}
    for sub in TASK_ADAPTER_DIRS:
        base = path / sub
        if base.is_dir():
            for child in sorted(base.iterdir()):
                if (child / "adapter_config.json").is_file():
                    found[child.name] = child
    return found


def onnx_model_info(
    path: Path,
    *,
    dim: int,
    max_tokens: int,
    pooling: Pooling,
    normalize: bool,
    tokenizer_path: Path,
    architecture: str = "bert",
) -> TextModelInfo:
    """Metadata of a text model shipped as one ONNX file (it carries none itself)."""
    return TextModelInfo(
        path=path,
        architecture=architecture,
        dim=dim,
        max_tokens=max_tokens,
        pooling=pooling,
        normalize=normalize,
        format="onnx",
        tokenizer_path=tokenizer_path,
    )


def read_model_info(path: Path, default_pooling: Pooling = "mean") -> TextModelInfo:
    """Read a sentence-transformers or plain Hugging Face folder's metadata (no weights loaded)."""
    config = _read_json(path / "config.json")
    if not config:
        raise ModelNotFound(f"{path} has no config.json; it is not a transformers model folder")
    module_list: list[dict[str, Any]] = []
    if (path / "modules.json").is_file():
        raw = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        module_list = raw if isinstance(raw, list) else []
    types = [str(m.get("type", "")) for m in module_list]
    pooling: Pooling = default_pooling
    include_prompt = True
    for m in module_list:
        if str(m.get("type", "")).endswith("Pooling"):
            pooling, include_prompt = _pooling_from_config(
                _read_json(path / m["path"] / "config.json")
            )
    # A plain HF folder (no modules.json) is normalised: cosine is what users expect from it.
    normalize = any(t.endswith("Normalize") for t in types) or not module_list
    sbert = _read_json(path / "sentence_bert_config.json")
    st_cfg = _read_json(path / "config_sentence_transformers.json")
    model_max = int(config.get("max_position_embeddings", 512))
    if config.get("model_type") in {"bert", "roberta", "xlm-roberta", "mpnet"} and model_max > 512:
        model_max = 512
    if config.get("model_type") in {"roberta", "xlm-roberta", "camembert"}:
        model_max -= 2  # position ids start after the padding index
    max_tokens = int(sbert.get("max_seq_length") or model_max)
    return TextModelInfo(
        path=path,
        architecture=str(config.get("model_type", "unknown")),
        dim=int(config.get("hidden_size") or config.get("d_model") or 0),
        max_tokens=max_tokens,
        pooling=pooling,
        normalize=normalize,
        lowercase=bool(sbert.get("do_lower_case", False)),
        include_prompt=include_prompt,
        prompts={str(k): str(v) for k, v in (st_cfg.get("prompts") or {}).items()},
        default_prompt_name=st_cfg.get("default_prompt_name"),
        similarity_fn=str(st_cfg.get("similarity_fn_name") or "cosine"),
        tasks=tuple(_task_adapters(path)),
        matryoshka_dims=_matryoshka_dims(st_cfg),
    )


def _matryoshka_dims(st_cfg: dict[str, Any]) -> tuple[int, ...]:
    """`matryoshka_dims` in config_sentence_transformers.json (written by `embedbox train
    --matryoshka`; sentence-transformers ignores the key)."""
    raw = st_cfg.get("matryoshka_dims") or []
    if not isinstance(raw, list):
        return ()
    dims = {int(d) for d in raw if isinstance(d, int) and not isinstance(d, bool) and d > 0}
    return tuple(sorted(dims, reverse=True))


class TextEncoder:
    """Tokenise texts and pool a backend's token states into one float32 vector per text.

    The backend (`models.backends`) only runs the transformer; everything around it (special
    tokens, truncation, padding, pooling) is here, shared by all backends. Built without a
    `backend`, it loads the transformers model and runs it with torch in `dtype` (`compile=True`
    wraps it in `torch.compile`, see `EmbedderOptions`).
    """

    def __init__(
        self,
        info: TextModelInfo,
        device: str,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
        backend: Backend | None = None,
        request: Request | None = None,
    ) -> None:
        """`backend`: run this one; `request`: choose one (`backends.select`); neither: torch."""
        from transformers import AutoTokenizer

        self.info = info
        self.device = torch.device(device)
        self.adapters = _task_adapters(info.path) if info.format == "transformers" else {}
        if compile and self.adapters:  # before loading the weights
            raise InputError("compile=True is not supported for models with task adapters")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                str(info.tokenizer_path or info.path), local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"cannot load the tokenizer of {info.path}: {exc}") from exc
        self._active_task: str | None = None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.special_prefix, self.special_suffix = self._special_tokens()
        self._types = "token_type_ids" in self.tokenizer.model_input_names and (
            info.architecture in {"bert", "nomic_bert"}
        )
        self.selection: Selection | None = None
        if backend is None and request is not None:
            from embedbox.models.backends.select import open_backend

            backend, self.selection = open_backend(self, request)
        if backend is None:
            model = load_model(info.path, dtype)
            if self.adapters:
                model = with_adapters(model, self.adapters)
            backend = TorchBackend(model, self.device, compile=compile)
        self.backend: Backend = backend

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (torch.int8 for int8 models)."""
        return COMPUTE_DTYPES.get(self.backend.compute, torch.float32)

    @property
    def compiled(self) -> bool:
        return bool(getattr(self.backend, "compiled", False))

    @property
    def model(self) -> Any:
        """The transformers model when the backend is torch (None otherwise)."""
        return getattr(self.backend, "model", None)

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts around a text (e.g. [CLS] ... [SEP])."""
        marker = self.tokenizer("x", add_special_tokens=False)["input_ids"]
        full = self.tokenizer("x", add_special_tokens=True)["input_ids"]
        at = full.index(marker[0]) if marker and marker[0] in full else 0
        return list(full[:at]), list(full[at + len(marker) :])

    # ---- tokenisation -------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, not truncated (so callers can see the true length)."""
        if self.info.lowercase:
            texts = [t.lower() for t in texts]
        enc = self.tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [list(ids) for ids in enc["input_ids"]]

    def truncate(self, ids: list[int], max_tokens: int) -> list[int]:
        """Keep the head of the text and the closing special tokens, as HF truncation does."""
        keep = max_tokens - len(self.special_suffix)
        return ids[:keep] + self.special_suffix

    def content_ids(self, text: str) -> list[int]:
        if self.info.lowercase:
            text = text.lower()
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def wrap(self, content: list[int]) -> list[int]:
        return self.special_prefix + content + self.special_suffix

    def decode_offsets(self, text: str) -> tuple[list[str], list[tuple[int, int]], list[int]]:
        """Token strings, character spans and ids of `text` (no special tokens)."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        return (
            list(self.tokenizer.convert_ids_to_tokens(ids)),
            [tuple(o) for o in enc["offset_mapping"]],
            ids,
        )

    # ---- model --------------------------------------------------------------------------
    def set_task(self, task: str | None) -> None:
        if not self.adapters:
            if task is not None:
                raise InputError(f"task {task!r} given, but this model has no task adapters")
            return
        if task is None:
            raise InputError(f"this model needs a task; choose one of {sorted(self.adapters)}")
        if task not in self.adapters:
            raise InputError(f"unknown task {task!r}; choose one of {sorted(self.adapters)}")
        if task != self._active_task:
            self.backend.set_adapter(adapter_name(task))
            self._active_task = task

    def inputs(self, batch: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        """A padded batch on the CPU: input_ids, attention_mask (and token_type_ids for BERTs)."""
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        out = {"input_ids": input_ids, "attention_mask": mask}
        if self._types:
            out["token_type_ids"] = torch.zeros_like(input_ids)
        return out

    def token_states(
        self, batch: Sequence[list[int]], backend: Backend | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states (float32) and the attention mask for a batch of token id lists."""
        inputs = self.inputs(batch)
        states = (backend or self.backend).token_states(inputs)
        return states, inputs["attention_mask"].to(states.device)

    def embed_batch(
        self, batch: Sequence[list[int]], prompt_tokens: int = 0, backend: Backend | None = None
    ) -> np.ndarray:
        """Pooled (not yet normalised) float32 vectors for already-tokenised texts."""
        with torch.inference_mode():
            states, mask = self.token_states(batch, backend)
            return pool(states, mask, self.info.pooling, prompt_tokens).cpu().numpy()


def pool(states: torch.Tensor, mask: torch.Tensor, how: Pooling, skip: int = 0) -> torch.Tensor:
    """Pool token states (n, t, d) under an attention mask (n, t), optionally skipping prompt tokens."""
    if skip:
        mask = mask.clone()
        mask[:, 1 : 1 + skip] = 0  # keep [CLS]; drop prompt tokens, as include_prompt=False does
    m = mask.unsqueeze(-1).to(states.dtype)
    if how == "mean":
        # where, not a product: a backend may leave non-finite values at padded positions
        kept = torch.where(m > 0, states, torch.zeros((), dtype=states.dtype))
        return kept.sum(1) / m.sum(1).clamp(min=1e-9)
    if how == "cls":
        return states[:, 0]
    if how == "max":
        return states.masked_fill(m == 0, -1e9).max(1).values
    last = mask.sum(1) - 1
    return states[torch.arange(states.shape[0], device=states.device), last]
