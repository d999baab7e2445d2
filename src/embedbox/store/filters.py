"""Metadata filters (Chroma / MongoDB style) compiled to a SQL WHERE clause.

    {"source": "abc"}                         equality (same as {"source": {"$eq": "abc"}})
    {"year": {"$gte": 2000, "$lt": 2010}}     comparisons: $gt $gte $lt $lte $ne
    {"lang": {"$in": ["en", "de"]}}           membership: $in $nin
    {"tags": {"$contains": "sport"}}          a list field holds the value
    {"author": {"$exists": True}}
    {"$and": [...]}, {"$or": [...]}, {"$not": {...}}

Clauses run on `documents.metadata` (JSON) inside SQLite, so the filter is applied *before* the
vector search. Anything malformed is an `InputError` saying what is wrong.

Range operators ($gt $gte $lt $lte) compare like with like, as MongoDB does: a number matches
only numeric values and a string only text values, so `{"year": {"$gte": 2000}}` never matches
the text "1990" (SQLite would order every text above every number). `range_keys` lists the
fields compared with numbers, so callers can warn when those hold text.

Depth is the number of filter objects nested inside each other: `{"a": 1}` is 1, `{"$and":
[{"a": 1}]}` is 2, `{"a": {"$gt": 1}}` is 2 (lists do not count). The library refuses more than
`MAX_DEPTH`; the server's limit (`max_filter_depth`) is counted the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from embedbox.errors import InputError
from embedbox.inputs import check_unicode

MAX_DEPTH = 32
Where = dict[str, Any]
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-.:]{0,127}$")
_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_FIELD_OPS = (*_COMPARE, "$in", "$nin", "$exists", "$contains")
Scalar = str | int | float | bool


def compile_where(where: Where | None, column: str = "d.metadata") -> tuple[str, list[Any]]:
    """-> (sql, params). An empty or None filter matches everything ("1")."""
    if where is None:
        return "1", []
    if isinstance(where, str):
        try:
            where = json.loads(where)
        except json.JSONDecodeError as exc:
            raise InputError(f"filter is not valid JSON: {exc.msg}") from exc
    check_depth(where, MAX_DEPTH)
    params: list[Any] = []
    sql = _node(where, column, params, "where")
    return sql, params


@dataclass(frozen=True)
class Filters:
    """A metadata filter and a document-text filter, applied together (both optional)."""

    where: Where | None = None
    document: Where | None = None

    def sql(self) -> tuple[str, list[Any]]:
        return compile_filter(self.where, self.document)

    def __bool__(self) -> bool:
        return bool(self.where) or self.document is not None


def compile_filter(
    where: Where | None, where_document: Where | None, column: str = "d.metadata"
) -> tuple[str, list[Any]]:
    """A metadata filter and a document-text filter as one SQL condition on `documents d`.

    `where_document` (as Chroma's): {"$contains": "fire"}, {"$not_contains": "draft"}, and
    {"$and": [...]} / {"$or": [...]} of those; case-sensitive substrings of the whole text.
    """
    sql, params = compile_where(where, column)
    if where_document is None:
        return sql, params
    check_depth(where_document, MAX_DEPTH, "where_document")
    doc_sql = _document(where_document, params, "where_document")
    return (doc_sql if sql == "1" else f"({sql} AND {doc_sql})"), params


def _document(node: Any, params: list[Any], at: str) -> str:
    if not isinstance(node, dict) or len(node) != 1:
        raise InputError(f'{at}: expects one operator, e.g. {{"$contains": "word"}}, got {node!r}')
    ((op, arg),) = node.items()
    if op in ("$and", "$or"):
        if not isinstance(arg, list) or not arg:
            raise InputError(f"{at}.{op}: expects a non-empty list of document filters")
        subs = [_document(v, params, f"{at}.{op}[{i}]") for i, v in enumerate(arg)]
        return "(" + (" AND " if op == "$and" else " OR ").join(subs) + ")"
    if op not in ("$contains", "$not_contains"):
        raise InputError(f"{at}: unknown operator {op!r}; use $contains, $not_contains, $and, $or")
    if not isinstance(arg, str) or not arg:
        raise InputError(f"{at}.{op}: expects a non-empty string, got {arg!r}")
    check_unicode(arg, f"{at}.{op}")
    params.append(arg)
    return "instr(d.text, ?) > 0" if op == "$contains" else "instr(d.text, ?) = 0"


def range_keys(where: Any) -> set[str]:
    """Metadata keys a filter compares with numbers through $gt / $gte / $lt / $lte."""
    found: set[str] = set()
    todo = [where]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key.startswith("$"):
                    todo.append(value)
                elif isinstance(value, dict) and any(
                    op in ("$gt", "$gte", "$lt", "$lte") and isinstance(arg, int | float)
                    for op, arg in value.items()
                ):
                    found.add(key)
    return found


def depth(where: Any) -> int:
    """How many filter objects nest inside each other (see the module docstring)."""
    deepest, todo = 0, [(where, 0)]
    while todo:  # iterative: a hostile filter nested 10 000 deep must not overflow the stack
        node, level = todo.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level + 1)
            todo.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            todo.extend((v, level) for v in node)
    return deepest


def check_depth(where: Any, limit: int, param: str = "where") -> None:
    found = depth(where)
    if found > limit:
        raise InputError(f"{param} nests {found} filter objects deep; the limit is {limit}")


def _node(node: Any, column: str, params: list[Any], at: str) -> str:
    if not isinstance(node, dict):
        raise InputError(f'{at}: a filter must be an object like {{"key": value}}, got {node!r}')
    if not node:
        return "1"
    parts = []
    for key, value in node.items():
        if not isinstance(key, str):
            raise InputError(f"{at}: filter keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InputError(f"{at}.{key}: expects a non-empty list of filters")
            subs = [_node(v, column, params, f"{at}.{key}[{i}]") for i, v in enumerate(value)]
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(subs) + ")")
        elif key == "$not":
            parts.append(f"NOT ({_node(value, column, params, f'{at}.$not')})")
        elif key.startswith("$"):
            raise InputError(
                f"{at}: unknown operator {key!r} at the top level; use $and, $or, $not or a "
                "metadata key"
            )
        else:
            parts.append(
                _field(key, value, column, params, f"{at}.{key if _KEY.match(key) else ascii(key)}")
            )
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _field(key: str, cond: Any, column: str, params: list[Any], at: str) -> str:
    if not _KEY.match(key):
        raise InputError(f"{at}: invalid metadata key {key!r} (letters, digits, _ - . : only)")
    path = f'$."{key}"'
    value_sql = f"json_extract({column}, '{path}')"
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    if not cond:
        raise InputError(f"{at}: empty condition")
    parts = []
    for op, arg in cond.items():
        if op not in _FIELD_OPS:
            raise InputError(f"{at}: unknown operator {op!r}; use one of {', '.join(_FIELD_OPS)}")
        if op in _COMPARE:
            _scalar(arg, f"{at}.{op}", ordered=op not in ("$eq", "$ne"))
            params.append(arg)
            if op == "$ne":  # a missing key is "not equal" (MongoDB semantics)
                parts.append(f"({value_sql} IS NULL OR {value_sql} != ?)")
            elif op == "$eq":
                parts.append(f"{value_sql} = ?")
            else:  # numbers compare with numbers, texts with texts (MongoDB's type brackets)
                types = "'integer', 'real'" if isinstance(arg, int | float) else "'text'"
                kind = f"json_type({column}, '{path}')"
                parts.append(f"({kind} IN ({types}) AND {value_sql} {_COMPARE[op]} ?)")
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list) or not arg:
                raise InputError(f"{at}.{op}: expects a non-empty list of values")
            for i, v in enumerate(arg):
                _scalar(v, f"{at}.{op}[{i}]", ordered=False)
            params.extend(arg)
            marks = ", ".join("?" * len(arg))
            if op == "$in":
                parts.append(f"{value_sql} IN ({marks})")
            else:
                parts.append(f"({value_sql} IS NULL OR {value_sql} NOT IN ({marks}))")
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise InputError(f"{at}.$exists: expects true or false, got {arg!r}")
            test = "IS NOT NULL" if arg else "IS NULL"
            parts.append(f"json_type({column}, '{path}') {test}")
        else:  # $contains
            _scalar(arg, f"{at}.$contains", ordered=False)
            params.append(arg)
            parts.append(
                f"EXISTS (SELECT 1 FROM json_each({column}, '{path}') WHERE json_each.value = ?)"
            )
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _scalar(value: Any, at: str, ordered: bool) -> None:
    if isinstance(value, str):
        check_unicode(value, at)
    if ordered:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InputError(f"{at}: expects a number or a string, got {value!r}")
    elif not isinstance(value, Scalar):
        raise InputError(f"{at}: expects a string, number or boolean, got {value!r}")
