"""Bearer API keys: loaded from flag / env / file, compared in constant time, ro or rw."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request

from embedbox.errors import InputError
from embedbox.server.errors import ApiError
from embedbox.server.settings import ApiKey

ENV_VAR = "EMBEDBOX_API_KEYS"


def parse_key_line(line: str, where: str) -> ApiKey | None:
    """`KEY` (read-write) or `KEY ro` (read-only); blank lines and `#` comments give None."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split()
    if len(parts) == 1:
        return ApiKey(parts[0], read_only=False)
    if len(parts) == 2 and parts[1].lower() in ("ro", "rw"):
        return ApiKey(parts[0], read_only=parts[1].lower() == "ro")
    raise InputError(f"{where}: expected `KEY` or `KEY ro`, got {len(parts)} words")


def load_keys(
    flag_keys: Iterable[str] = (),
    key_file: Path | None = None,
    env: str | None = None,
) -> tuple[ApiKey, ...]:
    """Keys from `--api-key` flags, `$EMBEDBOX_API_KEYS` (comma-separated) and `--api-key-file`."""
    keys: list[ApiKey] = []
    for n, raw in enumerate(flag_keys):
        key = parse_key_line(raw, f"--api-key #{n + 1}")
        if key is not None:
            keys.append(key)
    env_value = os.environ.get(ENV_VAR, "") if env is None else env
    for n, raw in enumerate(env_value.split(",")):
        key = parse_key_line(raw, f"${ENV_VAR} entry {n + 1}")
        if key is not None:
            keys.append(key)
    if key_file is not None:
        try:
            lines = Path(key_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read --api-key-file {key_file}: {exc.strerror}") from exc
        from_file = [parse_key_line(line, f"{key_file}:{n + 1}") for n, line in enumerate(lines)]
        keys.extend(k for k in from_file if k is not None)
        if not any(from_file):
            raise InputError(f"--api-key-file {key_file} holds no keys")
    for key in keys:
        if len(key.key) < 8:
            raise InputError("API keys must be at least 8 characters long")
    return tuple(keys)


def match_key(keys: tuple[ApiKey, ...], presented: str) -> ApiKey | None:
    """The configured key equal to `presented`; every key is compared, in constant time."""
    found: ApiKey | None = None
    given = presented.encode()
    for key in keys:
        if hmac.compare_digest(key.key.encode(), given):
            found = key
    return found


def authorize(request: Request, write: bool) -> None:
    """Raise 401 (missing / wrong key) or 403 (read-only key on a write) when auth is on."""
    keys: tuple[ApiKey, ...] = request.app.state.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "missing API key: send the header `Authorization: Bearer <key>`",
            type="authentication_error",
            code="missing_api_key",
            headers=challenge,
        )
    key = match_key(keys, token.strip())
    if key is None:
        raise ApiError(
            401,
            "invalid API key",
            type="authentication_error",
            code="invalid_api_key",
            headers=challenge,
        )
    request.state.read_only = key.read_only
    if write and key.read_only:
        raise ApiError(
            403,
            "this API key is read-only; writing to collections needs a read-write key",
            type="permission_error",
            code="read_only_key",
        )


async def require_read(request: Request) -> None:
    """FastAPI dependency: any valid key (or none when auth is off). Async: a plain `def`
    dependency would cost every request a hop to the thread pool and back."""
    authorize(request, write=False)


async def require_write(request: Request) -> None:
    """FastAPI dependency: a read-write key."""
    authorize(request, write=True)
