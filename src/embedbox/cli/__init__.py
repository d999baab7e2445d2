"""The `embedbox` command line. Each command group lives in its own module and registers on `app`.

Errors a user can cause become one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from embedbox.cli.common import app, fail
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        app(args=argv, standalone_mode=False)
    except EmbedboxError as exc:
        fail(str(exc))
    except typer.Abort:
        fail("aborted", code=130)
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
