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


def run_cli(*args: str, stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = saved
    return Result(code, out.getvalue(), err.getvalue())
