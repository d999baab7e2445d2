"""Run the `embedbox` CLI in this process (no interpreter start-up, no model reload): what the
user would see on stdout and stderr, and the exit code. Tests where the process boundary is the
point (kill -9, stdin from a pipe, a fresh import) start a real process instead."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from embedbox.cli import main


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(*args: str, stdin: str = "", columns: int | None = None) -> Result:
    """`columns`: the terminal width tables are drawn for (a pipe gets 80)."""
    from embedbox.cli import common

    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    widths = (common.console._width, common.err_console._width)
    sys.stdin = io.StringIO(stdin)
    if columns is not None:
        common.console.width = common.err_console.width = columns
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = saved
        common.console._width, common.err_console._width = widths
    return Result(code, out.getvalue(), err.getvalue())
