"""Checking what callers hand in: texts, ids, metadata (no heavy imports here).

Strings must be valid Unicode: a lone surrogate such as "\\ud800" (which JSON allows, and which
Python makes of invalid UTF-8 read with errors="surrogateescape") cannot be stored, tokenised or
written out as UTF-8, so it is refused up front, naming the item.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from embedbox.errors import InputError

_SURROGATE = re.compile("[\ud800-\udfff]")
_FIX = "decode your input as UTF-8 with errors='replace'"


def check_unicode(text: str, what: str) -> None:
    """Raise `InputError` naming `what` when `text` holds a lone surrogate."""
    bad = _SURROGATE.search(text)
    if bad is not None:
        raise InputError(
            f"{what} is not valid Unicode (a lone surrogate {bad.group()!a} at character "
            f"{bad.start()}); {_FIX}"
        )


def validate_texts(
    texts: Sequence[str], allow_empty: bool = False, what: str = "item"
) -> list[str]:
    """A list of strings -> itself as a list; raises `InputError` naming the first bad item."""
    if isinstance(texts, str):
        raise InputError(
            "expected a list of texts, got one string; wrap it in a list (or use embed_one())"
        )
    if hasattr(texts, "tolist"):  # numpy arrays of strings
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        raise InputError(f"texts must be a list of strings, got {type(texts).__name__}")
    out: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            kind = "None" if text is None else type(text).__name__
            raise InputError(f"{what} {i} is {kind}, not a string")
        if not allow_empty and not text.strip():
            raise InputError(
                f"{what} {i} is empty or whitespace only; remove it or pass allow_empty=True"
            )
        check_unicode(text, f"{what} {i}")
        out.append(text)
    return out


def check_json(value: Any, what: str, depth: int = 0) -> None:
    """Raise `InputError` when a JSON-like value (metadata) holds invalid Unicode, in a key or
    a string value at any depth, or nests deeper than 32 levels."""
    if depth > 32:
        raise InputError(f"{what} nests deeper than 32 levels")
    if isinstance(value, str):
        check_unicode(value, what)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                check_unicode(key, f"{what}: key {key!a}")
            check_json(item, f"{what}.{key}" if isinstance(key, str) else what, depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{what}[{i}]", depth + 1)


def repair(value: Any) -> Any:
    """A JSON-like value with every lone surrogate replaced by U+FFFD: rows stored by older
    versions (which did not check) still read and print."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {repair(k): repair(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repair(v) for v in value]
    return value


def may_need_repair(raw_json: str) -> bool:
    """Cheap test on stored JSON text: surrogates are escaped as \\udXXX (emoji too)."""
    return "\\ud" in raw_json
