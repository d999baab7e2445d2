"""The `embedbox` command line. Each command group lives in its own module and registers on `app`.

Errors a user can cause become one line on stderr and a non-zero exit code, never a traceback:
usage errors (unknown option or command, missing argument) exit 2, like every input error.
embedbox's warnings are one line on stderr too (`warning: ...`).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

import typer

from embedbox.cli.common import app, fail, show_warning
from embedbox.errors import EmbedboxError

# Command modules register themselves on `app` when imported.
from embedbox.cli import embed_cmd  # noqa: F401  isort: skip
from embedbox.cli import collection_cmd  # noqa: F401  isort: skip
from embedbox.cli import serve_cmd  # noqa: F401  isort: skip
from embedbox.cli import tasks_cmd  # noqa: F401  isort: skip
from embedbox.cli import classify_cmd  # noqa: F401  isort: skip
from embedbox.cli import words_cmd  # noqa: F401  isort: skip
from embedbox.cli import images_cmd  # noqa: F401  isort: skip
from embedbox.cli import dataset_cmd  # noqa: F401  isort: skip
from embedbox.cli import eval_cmd  # noqa: F401  isort: skip
from embedbox.cli import distill_cmd  # noqa: F401  isort: skip
from embedbox.cli import models_cmd  # noqa: F401  isort: skip
from embedbox.cli import train_cmd  # noqa: F401  isort: skip


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            app(args=argv, prog_name="embedbox", standalone_mode=False)
    except EmbedboxError as exc:
        fail(str(exc))
    except typer.Abort:
        fail("aborted", code=130)
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if isinstance(exc, _usage_errors()):
            fail(_usage_line(exc), code=getattr(exc, "exit_code", 2))
        raise


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's exceptions: typer >= 0.20 raises its own copy of click's, older typer click's."""
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except ImportError:
            continue
    return tuple(found)


def _usage_line(exc: Any) -> str:
    """A usage error as one line, with the help command that explains the usage."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "embedbox"
    return f"{exc.format_message().rstrip('.')} (see '{command} --help')"


if __name__ == "__main__":
    main()
