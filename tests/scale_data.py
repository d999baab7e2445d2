"""Shared input files for the scale tests, built from STS-B sentences (shipped data)."""

from __future__ import annotations

import json
from pathlib import Path

from embedbox.datasets import sts_b

BAD = [
    {"doc": "bad-empty", "text": "   ", "score": 1.0},
    {"doc": "bad-type", "text": 42, "score": 2.0},
    {"doc": "bad-missing", "score": 3.0},
]


def sentences(n: int, offset: int = 0) -> list[str]:
    pairs = sts_b("test")
    return [p.a for p in pairs[offset : offset + n]]


def write_jsonl(path: Path, n: int, bad: bool = True) -> list[dict[str, object]]:
    """n good rows (ids d0..), optionally the bad rows and one broken line in between."""
    rows: list[dict[str, object]] = [
        {"doc": f"d{i}", "text": t, "score": float(i % 5)} for i, t in enumerate(sentences(n))
    ]
    lines = [json.dumps(r) for r in rows]
    if bad:
        for k, r in enumerate(BAD):
            lines.insert(5 + 7 * k, json.dumps(r))
        lines.insert(30, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows
