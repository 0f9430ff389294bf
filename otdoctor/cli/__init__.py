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


# The commands that leave work a re-run picks up (a venv half-installed, a .part download, a fix
# half-applied, a smoke run's result); the others have nothing to resume.
_RESUMABLE = (("install",), ("fix",), ("smoke",), ("models", "download"))


def _resumable(argv: list[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")][:2]
    return any(tuple(words[: len(cmd)]) == cmd for cmd in _RESUMABLE)


def _interrupted(argv: list[str]) -> int:
    """One line for Ctrl-C, SIGTERM or SIGHUP (each unwound as KeyboardInterrupt); the exit code."""
    signum = stop_signal()
    if signum is None:
        sys.stderr.write("\notdoctor: interrupted\n")
        return 130
    name = signal.Signals(signum).name
    resume = "; run the same command again to resume" if _resumable(argv) else ""
    sys.stderr.write(f"otdoctor: stopped by {_STOPPED_BY.get(name, name)}{resume}\n")
    return 128 + signum


_COMPLETION_OPTIONS = ("--show-completion", "--install-completion")
_SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
# typer asks shellingham for the shell these options are for, unless this is set: then they take
# the shell as a value (`--show-completion zsh`), which is what a user naming one means.
_NAMED_SHELL = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


def _names_a_shell(argv: list[str]) -> bool:
    """`--show-completion zsh` or `--install-completion=fish`: the shell is given, not detected."""
    for i, arg in enumerate(argv):
        if arg.startswith(tuple(f"{o}=" for o in _COMPLETION_OPTIONS)):
            return True
        if arg in _COMPLETION_OPTIONS and argv[i + 1 : i + 2] and argv[i + 1] in _SHELLS:
            return True
    return False


def _call_app(argv: list[str]) -> object:
    if not _names_a_shell(argv) or os.environ.get(_NAMED_SHELL):
        return app(args=argv, prog_name="otdoctor", standalone_mode=False)
    os.environ[_NAMED_SHELL] = "1"
    try:
        return app(args=argv, prog_name="otdoctor", standalone_mode=False)
    finally:
        del os.environ[_NAMED_SHELL]


def _run(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        rv = _call_app(argv)
    except UserError as exc:
        sys.stderr.write(redact(f"otdoctor: error: {exc.message}") + "\n")
        if exc.hint:
            sys.stderr.write(redact(f"  {exc.hint}") + "\n")
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        return _interrupted(argv)
    except TyperException as exc:  # usage errors: bad option, missing argument
        return _usage_error(exc)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        return _internal_error(exc)
    if rv == 130:  # typer itself turns Ctrl-C inside a command into Exit(130), without a word
        return _interrupted(argv)
    return rv if isinstance(rv, int) else 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: map errors, Ctrl-C, SIGTERM and SIGHUP to one line and an exit code."""
    register_env_secrets()
    with terminate_as_interrupt():
        code = _run(argv)
    sys.exit(code)
