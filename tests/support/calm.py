"""Run `otdoctor` in-process on generated input and assert it stayed calm (issue 12).

Calm means: the run ended in findings or a one-line usage error (exit 0, 1 or 2), no "internal
error", no traceback, no check that crashed, and within the time bound. Property tests call the
real console-script entry point `otdoctor.cli.main` (the same code path as the installed command)
in-process, so hundreds of examples fit in seconds.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from otdoctor.cli import main

TIME_LIMIT_S = 5.0


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    seconds: float


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for one in-process run, restoring the old values after."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_main(argv: list[str], env: Mapping[str, str] | None = None) -> Run:
    """`otdoctor ARGV` in this process; returns the exit code, stdout, stderr and wall time."""
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    code = 0
    with environment(env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return Run(code, out.getvalue(), err.getvalue(), time.monotonic() - start)


def assert_calm(run: Run, *, limit_s: float = TIME_LIMIT_S) -> None:
    """The promises of issue 12 for one run: a finding or a one-line usage error, in bounded time."""
    text = run.out + run.err
    assert run.code in (0, 1, 2), f"exit {run.code}: {text[-2000:]}"
    assert "internal error" not in text, text[-2000:]
    assert "Traceback (most recent call last)" not in text, text[-2000:]
    assert not re.search(r"\b\d+ crashed|\"status\": \"error\"", text), text[-2000:]
    assert run.seconds < limit_s, f"took {run.seconds:.1f} s: {text[-500:]}"
