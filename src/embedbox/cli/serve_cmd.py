"""`embedbox serve`: the HTTP server (OpenAI-compatible embeddings + native API)."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from embedbox.cli.common import BackendOpt, ComputeOpt, DataDirOpt, app, err_console
from embedbox.errors import InputError
from embedbox.server.settings import ServerSettings

D = ServerSettings()  # the defaults live there, once


@app.command()
def serve(
    host: str = typer.Option(D.host, "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(D.port, "--port", "-p", help="TCP port (0: any free port)."),
    model: list[str] = typer.Option(
        list(D.models),
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
        str(D.word_model), "--word-model", help="Word vectors for /words/... ('none': off)."
    ),
    image_model: str = typer.Option(
        str(D.image_model), "--image-model", help="Image model for /images/... ('none': off)."
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
    batching: bool = typer.Option(
        D.batching, "--batching/--no-batching", help="Dynamic micro-batching."
    ),
    max_batch_tokens: int = typer.Option(
        D.max_batch_tokens, "--max-batch-tokens", help="Token budget per merged batch."
    ),
    batch_tokens: int = typer.Option(
        D.batch_tokens,
        "--batch-tokens",
        "--model-batch-tokens",
        help="Padded tokens per model forward (texts of similar length are grouped).",
    ),
    max_wait_ms: float = typer.Option(
        D.max_wait_ms, "--max-wait-ms", help="How long a batch waits for more requests."
    ),
    max_queue: int = typer.Option(
        D.max_queue, "--max-queue", help="Queued requests per model before 503."
    ),
    timeout: float = typer.Option(
        D.request_timeout_s, "--timeout", help="Request timeout in seconds."
    ),
    max_body_mb: float = typer.Option(
        D.max_body_bytes / 2**20, "--max-body-mb", help="Largest request body (413 above)."
    ),
    max_inputs: int = typer.Option(D.max_inputs, "--max-inputs", help="Texts per request."),
    max_input_chars: int = typer.Option(
        D.max_input_chars, "--max-input-chars", help="Characters per text."
    ),
    truncate: bool = typer.Option(
        D.truncate, "--truncate/--no-truncate", help="Over-long texts: truncate (reported) or 400."
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
    port = _free_port(host) if port == 0 else _check_port(host, port)
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
        batch_tokens=batch_tokens,
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


def _check_port(host: str, port: int) -> int:
    """Fail now, not after the models have loaded, when the address is taken or not ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port}: {exc.strerror}; is another server running "
                "there? Pick another --port (0: any free port)"
            ) from exc
    return port


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
