"""Shared pieces of the CLI: the app, output helpers, progress bars, cached embedders."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table
from rich.text import Text

from embedbox.catalog import DEFAULT_TEXT_MODEL
from embedbox.errors import EmbedboxWarning, InputError
from embedbox.types import Progress

if TYPE_CHECKING:
    from embedbox.embed import Embedder

app = typer.Typer(
    name="embedbox",
    help="Local-first embeddings: embed, compare, store and search text, words and images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        import embedbox

        print(f"embedbox {embedbox.__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Local-first embeddings: embed, compare, store and search text, words and images."""


console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # a message is one line, whatever its length

ModelOpt = typer.Option(DEFAULT_TEXT_MODEL, "--model", "-m", help="Catalog name, HF id or folder.")
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


def parse_where(where: str | None, flag: str = "--where") -> dict[str, Any] | None:
    """A JSON filter option (`--where`, `--where-document`) as a dict (None when not given)."""
    if where is None:
        return None
    try:
        value = json.loads(where)
    except json.JSONDecodeError as exc:
        raise InputError(f"{flag} is not valid JSON ({exc.msg}): {where}") from exc
    if not isinstance(value, dict):
        raise InputError(f'{flag} must be a JSON object, e.g. \'{{"source": "a.txt"}}\'')
    return value


# Library errors name the Python argument that fixes them; on the command line it is a flag.
CLI_HINTS = (
    ("pass long_text='chunk'", "pass --long-text chunk"),
    ("truncate='error'", "--long-text error"),
    ("; remove it or pass allow_empty=True", "; remove it"),
    ("; remove it or pass vectors=", "; remove it"),
    ("pass truncate=True", "pass --truncate"),
    ("allow_pickle=True (CLI: --allow-pickle)", "--allow-pickle"),
    (" or Collection.open(..., create=True)", ""),
    ("use upsert to replace them", "re-run `embedbox add` to update them"),
    ("with workers=1", "with --workers 1"),
)


def cli_message(message: str) -> str:
    """A library error message in command-line terms, on one line."""
    for python, flag in CLI_HINTS:
        message = message.replace(python, flag)
    return " ".join(message.split())


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit non-zero."""
    err_console.print(
        f"[red]error:[/red] {cli_message(message)}", highlight=False, markup=True, soft_wrap=True
    )
    sys.exit(code)


_show_other_warning = warnings.showwarning


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` for the CLI: embedbox's warnings as one line on stderr."""
    if not issubclass(category, EmbedboxWarning):
        _show_other_warning(message, category, filename, lineno, file, line)
        return
    err_console.print(
        f"[yellow]warning:[/yellow] {escape(cli_message(str(message)))}",
        highlight=False,
        markup=True,
        soft_wrap=True,
    )


def cell(text: str) -> Text:
    """A table cell kept on one line and cut with … where its column is narrow.

    Give such a column no `no_wrap`: rich then narrows it (not the id and score columns, which
    are `no_wrap`) when the table is wider than the terminal, 80 columns when piped. The text
    is taken literally (no rich markup)."""
    return Text(" ".join(text.split()), no_wrap=True, overflow="ellipsis")


def add_id_column(table: Table, ids: Sequence[str], header: str = "id") -> None:
    """An id column that is never narrowed below its ids while they are short (up to 30
    characters); longer ids fold onto more lines rather than lose characters."""
    short = max((len(i) for i in ids), default=0) <= 30
    table.add_column(header, no_wrap=short, overflow="fold", max_width=None if short else 40)


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
def progress_bar(label: str, enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar on a terminal (stderr); a no-op callback otherwise."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    with ProgressBar(
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


_embedders: dict[tuple[Any, ...], Embedder] = {}


def get_embedder(
    model: str,
    compute: str = "auto",
    threads: int | None = None,
    backend: str = "auto",
    **options: Any,
) -> Embedder:
    """Load (once per process) the embedder for `model`; `options` are further
    `EmbedderOptions` fields (device, max_batch_size, ...)."""
    key = (model, compute, threads, backend, tuple(sorted(options.items())))
    if key not in _embedders:
        from embedbox.embed import Embedder

        with err_console.status(f"loading {model}…") if err_console.is_terminal else _null():
            _embedders[key] = Embedder(
                model, compute=compute, threads=threads, backend=backend, **options
            )
    return _embedders[key]


@contextmanager
def _null() -> Iterator[None]:
    yield
