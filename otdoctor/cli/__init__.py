"""The command line: parse, call one function per command, render. Thin on purpose.

One module per command group; this one puts them on the app in the order `--help` lists them
and maps errors to exit codes. Exit codes: 0 healthy (warnings allowed), 1 a required check failed
or crashed, 2 usage error, 130 Ctrl-C. Errors the user can act on are one line on stderr, never a
traceback.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from otdoctor.cli import check, estimate, explain, fix, gpu, install, merge, models, report, smoke
from otdoctor.cli.app import app
from otdoctor.errors import UserError
from otdoctor.redact import redact, register_env_secrets

COMMANDS = (
    ("check", check.check_cmd),
    ("gpu", gpu.gpu_cmd),
    ("install", install.install_cmd),
    ("fix", fix.fix_cmd),
    ("explain", explain.explain_cmd),
    ("smoke", smoke.smoke_cmd),
    ("estimate", estimate.estimate_cmd),
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map errors and Ctrl-C to one line and an exit code."""
    register_env_secrets()
    try:
        rv = app(args=argv, prog_name="otdoctor", standalone_mode=False)
    except UserError as exc:
        sys.stderr.write(redact(f"otdoctor: error: {exc.message}") + "\n")
        if exc.hint:
            sys.stderr.write(redact(f"  {exc.hint}") + "\n")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("\notdoctor: interrupted\n")
        sys.exit(130)
    except TyperException as exc:  # usage errors: bad option, missing argument
        sys.exit(_usage_error(exc))
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        sys.exit(_internal_error(exc))
    if rv == 130:  # typer itself turns Ctrl-C inside a command into Exit(130), without a word
        sys.stderr.write("\notdoctor: interrupted\n")
    sys.exit(rv if isinstance(rv, int) else 0)
