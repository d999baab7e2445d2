"""Build tiny randomly initialised models of each supported architecture in a folder.

Real weights for nomic-bert, jina-embeddings-v3 and ModernBERT are not reachable here, so these
exercise the real loader end to end: config, tokenizer, sentence-transformers metadata, adapters.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from embedbox.catalog import find

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
JINA_TASKS = ("retrieval.query", "retrieval.passage", "text-matching")


def _copy_tokenizer(dest: Path) -> None:
    spec = find("all-MiniLM-L6-v2")
    assert spec is not None
    src = spec.local_path()
    assert src is not None
    for name in TOKENIZER_FILES:
        shutil.copy(src / name, dest / name)


def _st_metadata(
    dest: Path, pooling: str, max_seq_length: int, prompts: dict[str, str], dim: int = 32
) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (dest / "modules.json").write_text(json.dumps(modules))
    (dest / "1_Pooling").mkdir()
    (dest / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": dim, f"pooling_mode_{pooling}": True})
    )
    (dest / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    (dest / "config_sentence_transformers.json").write_text(
        json.dumps(
            {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"}
        )
    )


def build(kind: str, dest: Path, hidden_size: int = 32, seed: int = 0) -> Path:
    """Save a tiny `kind` model (bert | mpnet | nomic_bert | jina | modernbert) with tokenizer and
    metadata; `hidden_size` (a multiple of 4) is its vector size, `seed` its random weights."""
    from transformers import (
        BertConfig,
        BertModel,
        JinaEmbeddingsV3Config,
        JinaEmbeddingsV3Model,
        ModernBertConfig,
        ModernBertModel,
        MPNetConfig,
        MPNetModel,
        NomicBertConfig,
        NomicBertModel,
    )

    torch.manual_seed(seed)
    dest.mkdir(parents=True)
    common = dict(
        vocab_size=30522,
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=2048,
        pad_token_id=0,
    )
    if kind == "bert":
        model = BertModel(BertConfig(**common))
        prompts = {}
        pooling = "mean_tokens"
    elif kind == "mpnet":  # no SDPA in transformers: the loader must fall back to eager
        model = MPNetModel(MPNetConfig(**common))
        prompts = {}
        pooling = "mean_tokens"
    elif kind == "nomic_bert":
        model = NomicBertModel(NomicBertConfig(**common, type_vocab_size=2))
        prompts = {"search_query": "search_query: ", "search_document": "search_document: "}
        pooling = "mean_tokens"
    elif kind == "modernbert":
        cfg = ModernBertConfig(
            **common,
            cls_token_id=101,
            sep_token_id=102,
            bos_token_id=101,
            eos_token_id=102,
            global_attn_every_n_layers=2,
            local_attention=64,
        )
        model = ModernBertModel(cfg)
        prompts = {"query": "search_query: ", "document": "search_document: "}
        pooling = "mean_tokens"
    elif kind == "jina":
        model = JinaEmbeddingsV3Model(JinaEmbeddingsV3Config(**common, type_vocab_size=1))
        prompts = {}
        pooling = "mean_tokens"
    else:
        raise ValueError(kind)
    model.save_pretrained(dest)
    _copy_tokenizer(dest)
    _st_metadata(dest, pooling, 1024, prompts, hidden_size)
    if kind == "jina":
        _save_adapters(model, dest)
    return dest


def _save_adapters(model: torch.nn.Module, dest: Path) -> None:
    """One LoRA adapter per task, with non-zero B so each task changes the output."""
    from peft import LoraConfig, get_peft_model

    for n, task in enumerate(JINA_TASKS):
        torch.manual_seed(100 + n)
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        peft_model = get_peft_model(_clone(model), cfg)
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.5)
        peft_model.save_pretrained(dest / "adapters" / task)


def _clone(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)
