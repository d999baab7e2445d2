"""OpenAI-style error objects `{"error": {"message", "type", "param", "code"}}` for every route."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from embedbox.errors import (
    Conflict,
    EmbedboxError,
    InputError,
    ModelNotFound,
    NotFound,
    StorageError,
)
from embedbox.inputs import repair

log = logging.getLogger("embedbox.server")
# An absolute path of two or more parts (a file or folder on the server).
_PATH = re.compile(r"(?<![\w.~:])(?:/[\w.\-]+){2,}/?")


# StorageError.reason -> HTTP status and code: a damaged or read-only collection is a state of
# that collection (409, as a conflict with what the request needs); a full disk is 507.
_STORAGE = {
    "damaged": (409, "collection_damaged"),
    "read_only": (409, "collection_read_only"),
    "full": (507, "insufficient_storage"),
}


def sees_paths(request: Request) -> bool:
    """Whether error messages may show server paths: to read-write keys, or when the server
    has no keys (it then listens on loopback only, unless started --insecure-no-auth).
    `server.auth` records the key's kind on the request."""
    settings = request.app.state.settings
    return not settings.api_keys or getattr(request.state, "read_only", True) is False


def public_message(message: str, show_paths: bool) -> str:
    """A library error as an HTTP client may read it: server paths cut to their last part
    unless `show_paths`, and command-line advice (`embedbox ...`) left out."""
    if not show_paths:
        message = _PATH.sub(lambda m: "…/" + m.group().rstrip("/").rsplit("/", 1)[-1], message)
    message = re.sub(r"[;,] (?:create|run|see)[^;]*`embedbox [^`]*`[^;]*", "", message)
    return message.replace("(CLI: --allow-pickle)", "").strip()


class ApiError(EmbedboxError):
    """An error with an HTTP status, rendered as an OpenAI-style error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}


def error_response(
    status: int,
    message: str,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    # An error may quote the bad input; a lone surrogate in it could not be written as UTF-8.
    body = repair({"error": {"message": message, "type": type, "param": param, "code": code}})
    return JSONResponse(body, status_code=status, headers=headers)


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'input', 3, 'x') -> 'input[3].x'; the 'body' / 'query' prefix is dropped."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not _is_type_tag(str(p)):
            out += f".{p}" if out else str(p)
    return out or "body"


def _is_type_tag(part: str) -> bool:
    """pydantic adds union-member tags such as 'list[str]' or 'function-after[...]' to locations."""
    return "[" in part or part in ("str", "int", "float", "bool", "dict", "list", "none")


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if not errors:
        return "invalid request", "body"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", "body"
    param = field_name(first.get("loc", ()))
    if param == "body" and first.get("type") in ("model_attributes_type", "dict_type"):
        return "the request body must be a JSON object (Content-Type: application/json)", "body"
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{param}: {msg}{more}", param


def install_handlers(app: FastAPI) -> None:
    """Map every exception to a JSON error; client mistakes are 4xx, never 500."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, param=param, code="invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, detail, code=code, headers=headers)

    @app.exception_handler(EmbedboxError)
    async def _embedbox(request: Request, exc: EmbedboxError) -> JSONResponse:
        message = public_message(str(exc), sees_paths(request))
        if isinstance(exc, NotFound | ModelNotFound):
            return error_response(404, message, code="not_found")
        if isinstance(exc, Conflict):
            return error_response(409, message, code="conflict")
        if isinstance(exc, InputError):
            return error_response(400, message, code="invalid_value")
        if isinstance(exc, StorageError):
            log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
            status, code = _STORAGE.get(exc.reason, (503, "storage_error"))
            return error_response(status, message, type="server_error", code=code)
        return error_response(400, message)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error", type="server_error")
