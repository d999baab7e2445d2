"""Token-aware chunking: long documents become overlapping windows with character spans."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from embedbox.errors import InputError

Span = tuple[int, int]


@dataclass(frozen=True)
class ChunkOptions:
    """`tokens`: window size (None: the model's maximum); `overlap`: tokens shared by neighbours.

    `enabled=False` embeds each document whole (truncated to the model's maximum).
    """

    enabled: bool = True
    tokens: int | None = None
    overlap: int = 32

    def check(self) -> None:
        if self.tokens is not None and self.tokens < 16:
            raise InputError(f"chunk tokens must be at least 16, got {self.tokens}")
        if self.overlap < 0 or (self.tokens is not None and self.overlap >= self.tokens // 2):
            raise InputError("chunk overlap must be >= 0 and less than half the chunk size")


def chunk_spans(
    texts: Sequence[str], tokenizer: Any, window: int, overlap: int
) -> list[list[Span]]:
    """Character spans of token windows covering each text; short texts get one span."""
    out: list[list[Span]] = [[(0, len(t))] for t in texts]
    # A wordpiece/BPE token covers at least one character, so short texts cannot overflow.
    long = [i for i, t in enumerate(texts) if len(t) > window]
    if not long:
        return out
    enc = tokenizer([texts[i] for i in long], add_special_tokens=False, return_offsets_mapping=True)
    stride = max(1, window - overlap)
    for i, offsets in zip(long, enc["offset_mapping"], strict=True):
        offsets = [(int(a), int(b)) for a, b in offsets if b > a]
        if len(offsets) <= window:
            continue
        spans = []
        for start in range(0, len(offsets), stride):
            part = offsets[start : start + window]
            spans.append((part[0][0], part[-1][1]))
            if start + window >= len(offsets):
                break
        spans[0] = (0, spans[0][1])
        spans[-1] = (spans[-1][0], len(texts[i]))
        out[i] = spans
    return out
