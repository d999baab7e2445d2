"""Shared pieces of the CLI: the app, output helpers, progress bars, cached embedders."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from embedbox.errors import InputError

app = typer.Typer(
    name="embedbox",
    help="Local-first embeddings: embed, compare, store and search text, words and images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

ModelOpt = typer.Option("all-MiniLM-L6-v2", "--model", "-m", help="Catalog name, HF id or folder.")
ComputeOpt = typer.Option(
    "auto",
    "--compute",
    help="auto | fp32 | bf16 | fp16 | int8 (auto: the fastest faithful one here; int8: openvino, "
    "used when it passes its quality gate).",
)
BackendOpt = typer.Option(
    "auto",
    "--backend",
    help="auto | torch | openvino (auto: measured once per machine and model, then cached).",
)
JsonOpt = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
DataDirOpt = typer.Option(
    None,
    "--data-dir",
    envvar="EMBEDBOX_DATA_DIR",
    help="Where collections live (default: $XDG_DATA_HOME/embedbox or the user data dir).",
)
WhereOpt = typer.Option(
    None, "--where", help='Metadata filter as JSON, e.g. \'{"year": {"$gte": 2000}}\'.'
)


def parse_where(where: str | None) -> dict[str, Any] | None:
    """The `--where` JSON filter as a dict (None when not given)."""
    if where is None:
        return None
    try:
        value = json.loads(where)
    except json.JSONDecodeError as exc:
        raise InputError(f"--where is not valid JSON ({exc.msg}): {where}") from exc
    if not isinstance(value, dict):
        raise InputError('--where must be a JSON object, e.g. \'{"source": "a.txt"}\'')
    return value


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit non-zero."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    sys.exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=_jsonable) + "\n")


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on a terminal (stderr); a no-op callback otherwise."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


_embedders: dict[tuple[str, str, int | None, str], Any] = {}


def get_embedder(
    model: str, compute: str = "auto", threads: int | None = None, backend: str = "auto"
) -> Any:
    """Load (once per process) the embedder for `model`."""
    key = (model, compute, threads, backend)
    if key not in _embedders:
        from embedbox.embed import Embedder

        with err_console.status(f"loading {model}…") if err_console.is_terminal else _null():
            _embedders[key] = Embedder(model, compute=compute, threads=threads, backend=backend)
    return _embedders[key]


@contextmanager
def _null() -> Iterator[None]:
    yield
