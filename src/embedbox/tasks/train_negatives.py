"""Hard negatives for (anchor, positive) pairs, mined with embedbox's own search.

Each anchor is searched (exact top-k, `similarity.chunked_top_k`) among all training positives
with the base model; its negative is the best-ranked text that is not one of its positives and
scores below `margin` times its positive (closer than that is too likely an unmarked positive,
as sentence-transformers' `mine_hard_negatives` also guards against).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from embedbox.similarity import chunked_top_k, normalize
from embedbox.tasks.train_data import Examples
from embedbox.tasks.train_eval import Encode

DEPTH = 30  # candidates looked at per anchor
MARGIN = 0.95


@dataclass(frozen=True)
class Mined:
    examples: Examples
    mined: int  # negatives found by search
    random: int  # anchors with no fitting candidate, given a random other positive


def mine_negatives(examples: Examples, encode: Encode, seed: int = 0) -> Mined:
    """`examples` (pairs without negatives) with a "negative" column added."""
    anchors, positives = examples.column("anchor"), examples.column("positive")
    corpus = list(dict.fromkeys(positives))
    where = {t: i for i, t in enumerate(corpus)}
    unique_anchors = list(dict.fromkeys(anchors))
    a_index = {t: i for i, t in enumerate(unique_anchors)}
    a_vecs = normalize(np.asarray(encode(unique_anchors), np.float32))
    c_vecs = normalize(np.asarray(encode(corpus), np.float32))
    top, sims = chunked_top_k(a_vecs, c_vecs, min(DEPTH, len(corpus)))
    own: dict[str, set[int]] = {}
    for a, p in zip(anchors, positives, strict=True):
        own.setdefault(a, set()).add(where[p])
    rng = random.Random(seed)
    negatives: list[str] = []
    mined = fallback = 0
    for a, p in zip(anchors, positives, strict=True):
        row = a_index[a]
        bar = MARGIN * float(a_vecs[row] @ c_vecs[where[p]])
        pick = next(
            (
                int(j)
                for j, s in zip(top[row], sims[row], strict=True)
                if int(j) not in own[a] and float(s) < bar
            ),
            None,
        )
        if pick is None:
            choices = [j for j in range(len(corpus)) if j not in own[a]]
            pick = rng.choice(choices) if choices else where[p]
            fallback += 1
        else:
            mined += 1
        negatives.append(corpus[pick])
    return Mined(examples.with_column("negative", negatives), mined, fallback)
