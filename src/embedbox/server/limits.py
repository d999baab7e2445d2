"""Request limits: body size (413) as ASGI middleware, and checks on inputs, names and filters."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path as PathParam
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedbox.errors import InputError
from embedbox.inputs import check_unicode
from embedbox.server.errors import ApiError, error_response
from embedbox.store.filters import depth
from embedbox.store.paths import NAME_PATTERN

NAME_RE = re.compile(NAME_PATTERN)
CollectionName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="Collection name.")]


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                response = error_response(400, "invalid Content-Length header", param="body")
                await response(scope, receive, send)
                return
            if too_big:
                await self._reject(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            f"request body is larger than the server's limit of {self.max_bytes} bytes; "
            "send fewer or shorter inputs per request",
            param="body",
            code="body_too_large",
        )
        await response(scope, receive, send)


def check_texts(texts: list[str], max_inputs: int, max_chars: int, param: str = "input") -> None:
    """At least one text, at most `max_inputs`, none empty, none over `max_chars` characters."""
    if not texts:
        raise ApiError(400, f"{param} must hold at least one text", param=param, code="empty_input")
    check_count(len(texts), max_inputs, param, "items", " per request")
    for i, text in enumerate(texts):
        check_text(text, f"{param}[{i}]", max_chars)


def check_count(n: int, limit: int, param: str, noun: str, suffix: str = "") -> None:
    """At most `limit` inputs in `param`."""
    if n > limit:
        raise ApiError(
            400,
            f"{param} has {n} {noun}; this server accepts at most {limit}{suffix}",
            param=param,
            code="too_many_inputs",
        )


def check_text(text: str, param: str, max_chars: int) -> None:
    """Not empty, valid Unicode, not over `max_chars` characters."""
    try:
        check_unicode(text, param)
    except InputError as exc:
        raise ApiError(400, str(exc), param=param, code="invalid_unicode") from None
    if not text.strip():
        raise ApiError(400, f"{param} is empty or whitespace only", param=param, code="empty_input")
    if len(text) > max_chars:
        raise ApiError(
            400,
            f"{param} has {len(text)} characters; the limit is {max_chars}",
            param=param,
            code="input_too_long",
        )


def check_collection_name(name: str, param: str = "name") -> None:
    """1-64 characters: letters, digits, `_`, `-`, `.`; starting with a letter or digit."""
    if not NAME_RE.match(name):
        raise ApiError(
            400,
            f"invalid collection name {name!r}: use 1-64 characters from A-Z a-z 0-9 _ - . "
            "starting with a letter or digit",
            param=param,
            code="invalid_name",
        )


def check_filter(where: Any, max_depth: int, param: str = "where") -> None:
    """A JSON object nesting at most `max_depth` filter objects (counted as the library does)."""
    if where is None:
        return
    if not isinstance(where, dict):
        raise ApiError(400, f"{param} must be a JSON object", param=param)
    found = depth(where)
    if found > max_depth:
        raise ApiError(
            400,
            f"{param} nests {found} filter objects deep; this server's limit is {max_depth}",
            param=param,
            code="filter_too_deep",
        )
