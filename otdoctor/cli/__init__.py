"""The command line: parse, call one function per command, render. Thin on purpose.

One module per command group; this one puts them on the app in the order `--help` lists them
and maps errors to exit codes. Exit codes: 0 healthy (warnings allowed), 1 a required check failed
or crashed, 2 usage error, 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (each stop unwinds the same way:
children stopped, state left resumable). Errors the user can act on are one line on stderr, never
a traceback.
"""

from __future__ import annotations

import os
import signal
import sys

import typer
from typer.exceptions import TyperException

from otdoctor.cli import check, estimate, explain, fix, gpu, install, merge, models, report, smoke, vram
from otdoctor.cli.app import app
from otdoctor.errors import UserError
from otdoctor.probe.child import stop_signal, terminate_as_interrupt
from otdoctor.redact import redact, register_env_secrets

COMMANDS = (
    ("check", check.check_cmd),
    ("gpu", gpu.gpu_cmd),
    ("install", install.install_cmd),
    ("fix", fix.fix_cmd),
    ("explain", explain.explain_cmd),
    ("smoke", smoke.smoke_cmd),
    ("estimate", estimate.estimate_cmd),
    ("vram", vram.vram_cmd),
    ("report", report.report_cmd),
    ("merge", merge.merge_cmd),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)
app.add_typer(models.models_app, name="models")

__all__ = ["app", "main"]


def _usage_error(exc: TyperException) -> int:
    show = getattr(exc, "show", None)
    if show:
        show()
    else:
        sys.stderr.write(f"otdoctor: error: {exc}\n")
    return int(getattr(exc, "exit_code", 2))


def _internal_error(exc: Exception) -> int:
    """A bug: one line for the user, the traceback on request."""
    if os.environ.get("OTDOCTOR_DEBUG"):
        raise exc
    sys.stderr.write(redact(f"otdoctor: internal error: {type(exc).__name__}: {exc}") + "\n")
    sys.stderr.write("  run again with OTDOCTOR_DEBUG=1 to see the traceback, and please report it\n")
    return 1


# What a signal that stops otdoctor means for the user, and the exit code a shell gives for it.
_STOPPED_BY = {"SIGTERM": "SIGTERM", "SIGHUP": "SIGHUP (the terminal closed)"}


def _interrupted() -> int:
    """One line for Ctrl-C, SIGTERM or SIGHUP (each unwound as KeyboardInterrupt); the exit code."""
    signum = stop_signal()
    if signum is None:
        sys.stderr.write("\notdoctor: interrupted\n")
        return 130
    name = signal.Signals(signum).name
    sys.stderr.write(f"otdoctor: stopped by {_STOPPED_BY.get(name, name)}; run the same command again to resume\n")
    return 128 + signum


def _run(argv: list[str] | None) -> int:
    try:
        rv = app(args=argv, prog_name="otdoctor", standalone_mode=False)
    except UserError as exc:
        sys.stderr.write(redact(f"otdoctor: error: {exc.message}") + "\n")
        if exc.hint:
            sys.stderr.write(redact(f"  {exc.hint}") + "\n")
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        return _interrupted()
    except TyperException as exc:  # usage errors: bad option, missing argument
        return _usage_error(exc)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        return _internal_error(exc)
    if rv == 130:  # typer itself turns Ctrl-C inside a command into Exit(130), without a word
        return _interrupted()
    return rv if isinstance(rv, int) else 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map errors, Ctrl-C, SIGTERM and SIGHUP to one line and an exit code."""
    register_env_secrets()
    with terminate_as_interrupt():
        code = _run(argv)
    sys.exit(code)
