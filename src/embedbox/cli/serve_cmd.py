"""`embedbox serve`: the HTTP server (OpenAI-compatible embeddings + native API)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from embedbox.catalog import DEFAULT_IMAGE_MODEL
from embedbox.cli.common import BackendOpt, ComputeOpt, DataDirOpt, app, err_console
from embedbox.errors import InputError
from embedbox.words import DEFAULT_WORD_MODEL

if TYPE_CHECKING:
    from embedbox.server.settings import ServerSettings


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port (0: any free port)."),
    model: list[str] = typer.Option(
        ["all-MiniLM-L6-v2"],
        "--model",
        "-m",
        help="Model to serve; repeat for several (first = default).",
    ),
    lazy: bool = typer.Option(False, "--lazy", help="Load each model on first use, not at start."),
    lazy_model: list[str] = typer.Option(
        [],
        "--lazy-model",
        help="Serve this model too, loaded on first use (others load at start); repeatable.",
    ),
    word_model: str = typer.Option(
        DEFAULT_WORD_MODEL, "--word-model", help="Word vectors for /words/... ('none': off)."
    ),
    image_model: str = typer.Option(
        DEFAULT_IMAGE_MODEL, "--image-model", help="Image model for /images/... ('none': off)."
    ),
    compute: str = ComputeOpt,
    backend: str = BackendOpt,
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    api_key: list[str] = typer.Option(
        [], "--api-key", help="A read-write key (`KEY` or `KEY ro`); repeatable."
    ),
    api_key_file: Path | None = typer.Option(
        None, "--api-key-file", help="One key per line; `KEY ro` marks a read-only key."
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="Allow a non-loopback bind without API keys."
    ),
    metrics_public: bool = typer.Option(False, "--metrics-public", help="/metrics without a key."),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="Dynamic micro-batching."),
    max_batch_tokens: int = typer.Option(
        8192, "--max-batch-tokens", help="Token budget per merged batch."
    ),
    model_batch_tokens: int = typer.Option(
        512,
        "--model-batch-tokens",
        help="Padded tokens per model forward (texts of similar length are grouped).",
    ),
    max_wait_ms: float = typer.Option(
        2.0, "--max-wait-ms", help="How long a batch waits for more requests."
    ),
    max_queue: int = typer.Option(256, "--max-queue", help="Queued requests per model before 503."),
    timeout: float = typer.Option(60.0, "--timeout", help="Request timeout in seconds."),
    max_body_mb: float = typer.Option(
        4.0, "--max-body-mb", help="Largest request body (413 above)."
    ),
    max_inputs: int = typer.Option(2048, "--max-inputs", help="Texts per request."),
    max_input_chars: int = typer.Option(32768, "--max-input-chars", help="Characters per text."),
    truncate: bool = typer.Option(
        True, "--truncate/--no-truncate", help="Over-long texts: truncate (reported) or 400."
    ),
    data_dir: Path | None = DataDirOpt,
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve embeddings over HTTP: OpenAI-compatible /v1/embeddings plus the native API."""
    try:
        import uvicorn

        from embedbox.server import ServerSettings, create_app
        from embedbox.server.auth import load_keys
    except ImportError as exc:
        raise InputError(
            f"the server needs its extra: pip install 'embedbox[server]' ({exc})"
        ) from exc
    keys = load_keys(api_key, api_key_file)
    if port == 0:
        port = _free_port(host)
    settings = ServerSettings(
        host=host,
        port=port,
        models=tuple(dict.fromkeys([*model, *lazy_model])),
        preload=not lazy,
        lazy_models=tuple(lazy_model),
        word_model=None if word_model.lower() == "none" else word_model,
        image_model=None if image_model.lower() == "none" else image_model,
        compute=compute,
        backend=backend,
        threads=threads,
        api_keys=keys,
        insecure_no_auth=insecure_no_auth,
        metrics_public=metrics_public,
        batching=batching,
        max_batch_tokens=max_batch_tokens,
        model_batch_tokens=model_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        request_timeout_s=timeout,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_inputs=max_inputs,
        max_input_chars=max_input_chars,
        truncate=truncate,
        data_dir=data_dir,
    )
    try:
        settings.check()
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    application = create_app(settings)
    err_console.print(startup_line(settings), highlight=False, markup=False, soft_wrap=True)
    uvicorn.run(
        application, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30
    )


def startup_line(s: ServerSettings) -> str:
    """One line an operator can read: URL, models, auth, batching."""
    shown = f"[{s.host}]" if ":" in s.host else s.host
    ro = sum(k.read_only for k in s.api_keys)
    auth = f"on ({len(s.api_keys)} key(s), {ro} read-only)" if s.api_keys else "OFF (no keys)"
    models = ", ".join(m + ("" if s.loads_at_start(m) else " (lazy)") for m in s.models)
    batching = f"on ({s.max_batch_tokens} tokens, {s.max_wait_ms:g} ms)" if s.batching else "off"
    return (
        f"embedbox serving on http://{shown}:{s.port}  models: {models}  auth: {auth}  "
        f"batching: {batching}  docs: http://{shown}:{s.port}/docs"
    )


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
