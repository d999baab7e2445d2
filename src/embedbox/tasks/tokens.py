"""Contextual token vectors: one vector per token (or per word) of a text, with character offsets.

>>> tv = embed_tokens("I sat on the river bank")
>>> tv.tokens[-1], tv.offsets[-1], tv.vectors.shape   # ('bank', (19, 23), (6, 384))

Unlike a static word vector, the same word gets a different vector in each context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from embedbox.errors import InputError, TruncationError

if TYPE_CHECKING:
    from embedbox.embed import Embedder

__all__ = ["TokenVectors", "embed_tokens"]

Level = Literal["token", "word"]


@dataclass(frozen=True)
class TokenVectors:
    """Tokens (or words) of one text, their [start, end) character spans and vectors (n, dim)."""

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]
    vectors: np.ndarray
    level: Level = "token"

    def find(self, word: str) -> list[int]:
        """Indices of the items whose text (from the offsets) equals `word`, ignoring case."""
        key = word.lower()
        return [i for i, (s, e) in enumerate(self.offsets) if self.text[s:e].lower() == key]

    def vector(self, word: str, occurrence: int = 0) -> np.ndarray:
        """The vector of `word` in this text (word level: the whole word; token level: its token)."""
        found = self.find(word)
        if len(found) <= occurrence:
            shown = ", ".join(repr(self.text[s:e]) for s, e in self.offsets[:20])
            raise InputError(f"{word!r} is not a {self.level} of this text ({shown})")
        return np.asarray(self.vectors[found[occurrence]], dtype=np.float32)


def embed_tokens(
    text: str,
    embedder: Embedder | None = None,
    *,
    level: Level = "token",
    normalize: bool = False,
    truncate: bool = False,
    task: str | None = None,
) -> TokenVectors:
    """Last-layer hidden state of every token of `text` (special tokens left out).

    `level="word"` mean-pools the word pieces of each word (as the tokenizer splits words).
    A text longer than the model's maximum raises `TruncationError` unless `truncate=True`.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"embed_tokens needs a non-empty string, got {text!r}")
    if level not in ("token", "word"):
        raise InputError(f"level must be 'token' or 'word', not {level!r}")
    if embedder is None:
        from embedbox.embed import Embedder

        embedder = Embedder(compute="fp32")
    enc = embedder.encoder
    source = text.lower() if enc.info.lowercase else text
    tokens, offsets, ids = enc.decode_offsets(source)
    if not ids:
        raise InputError(f"the tokenizer found no tokens in {text!r}")
    room = embedder.text_room()
    if len(ids) > room:
        if not truncate:
            raise TruncationError(
                f"the text has {len(ids)} tokens, more than the model's {room}; "
                "shorten it or pass truncate=True to keep the first tokens"
            )
        tokens, offsets, ids = tokens[:room], offsets[:room], ids[:room]
    states = embedder.token_states([enc.wrap(ids)], task=task)
    start = len(enc.special_prefix)
    vectors = states[0, start : start + len(ids)]
    spans = [(int(s), int(e)) for s, e in offsets]
    if level == "word":
        groups = _word_groups(enc.tokenizer, source, len(ids), spans)
        vectors = np.stack([vectors[g].mean(axis=0) for g in groups])
        spans = [(spans[g[0]][0], spans[g[-1]][1]) for g in groups]
        tokens = [text[s:e] for s, e in spans]
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return TokenVectors(text, list(tokens), spans, np.ascontiguousarray(vectors), level)


def _word_groups(
    tokenizer: object, text: str, n: int, spans: list[tuple[int, int]]
) -> list[list[int]]:
    """Token indices of each word: the tokenizer's word ids, else runs of touching spans."""
    word_ids: list[int | None] | None = None
    try:
        encoding = tokenizer(text, add_special_tokens=False)  # type: ignore[operator]
        word_ids = list(encoding.word_ids())[:n]
    except (ValueError, AttributeError, TypeError):  # slow tokenizers have no word ids
        word_ids = None
    groups: list[list[int]] = []
    for i in range(n):
        if word_ids is not None:
            same = bool(groups) and word_ids[i] is not None and word_ids[i] == word_ids[i - 1]
        else:
            same = bool(groups) and spans[i][0] == spans[i - 1][1]
        if same:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
