"""The command line: parse, call one function per command, render. Thin on purpose.

Exit codes: 0 healthy (warnings allowed), 1 a required check failed or crashed, 2 usage error,
130 Ctrl-C. Errors the user can act on are one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.exceptions import TyperException

from otdoctor import __version__
from otdoctor.errors import UserError
from otdoctor.redact import redact, register_env_secrets

app = typer.Typer(
    name="otdoctor",
    help="Environment and hardware doctor, installer and planner for OneTrainer.\n\n"
    "Start with `otdoctor check`: it finds your OneTrainer checkout, looks at Python, the venv, "
    "the GPU, checkpoints and config, and says what to fix.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"otdoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Environment and hardware doctor, installer and planner for OneTrainer."""


# Shared options ---------------------------------------------------------------------------------
OtDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--ot-dir",
        help="OneTrainer checkout. Default: $OT_DIR, the current folder, ~/Projects/OneTrainer, ~/OneTrainer.",
        file_okay=False,
    ),
]
ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", help="A OneTrainer training config (exported JSON or preset).", dir_okay=False),
]
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="Output format: text, json, junit or github.", case_sensitive=False)
]


def _out_console(output: Path | None):
    from otdoctor.render.text import console

    if output is None:
        return console()
    return console(file=open(output, "w", encoding="utf-8"), force_color=False)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")


# otdoctor check ---------------------------------------------------------------------------------
@app.command("check")
def check_cmd(
    ot_dir: OtDirOption = None,
    only: Annotated[
        Optional[List[str]], typer.Option("--only", help="Run only these checks (id, id prefix or area). Repeatable.")
    ] = None,
    skip: Annotated[
        Optional[List[str]], typer.Option("--skip", help="Leave out these checks (id, id prefix or area). Repeatable.")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List every check with its id, area and whether it can fix.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details of passing checks and tracebacks.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    fmt: FormatOption = "text",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to FILE.", dir_okay=False)] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No network access at all; checks that need it are skipped.")] = False,
    config: ConfigOption = None,
    models_dir: Annotated[
        Optional[List[Path]], typer.Option("--models-dir", help="A folder where you keep checkpoints. Repeatable.")
    ] = None,
    require_gpu: Annotated[
        bool, typer.Option("--require-gpu", help="No usable NVIDIA GPU is a failure (for GPU runners' CI pre-flight).")
    ] = False,
) -> None:
    """Diagnose OneTrainer's environment: Python, venv, GPU, checkpoints, config, disk.

    Exit code 0 when healthy (warnings allowed), 1 when a required check failed or crashed.
    """
    from otdoctor.doctor import make_context, run_doctor, selected_checks
    from otdoctor.probe import Probe
    from otdoctor.render import FORMATS

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}", exit_code=2)
    if list_:
        from otdoctor.render.text import render_list

        render_list(selected_checks(only or (), skip or ()), _out_console(output))
        return
    if config is not None and not config.is_file():
        raise UserError(f"config file not found: {config}", exit_code=2)

    probe = Probe()
    ctx = make_context(probe, ot_dir, config, models_dir or (), offline=offline, require_gpu=require_gpu)
    if fmt == "text" and output is None and sys.stdout.isatty():
        from otdoctor.render.text import console

        with console().status("Checking…"):
            report = run_doctor(ctx, only or (), skip or ())
    else:
        report = run_doctor(ctx, only or (), skip or ())

    if fmt == "text":
        from otdoctor.render import text

        out = _out_console(output)
        text.render(report, out, verbose=verbose, strict=strict)
    elif fmt == "json":
        from otdoctor.render import jsonout

        _write(jsonout.render(report, strict), output)
    elif fmt == "junit":
        from otdoctor.render import junit

        _write(junit.render(report, strict), output)
    else:
        from otdoctor.render import github

        _write(github.render(report, strict), output)
        summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as fh:
                fh.write(github.step_summary(report))
    raise typer.Exit(report.exit_code(strict))


# ---- otdoctor gpu (GPU checks) -----------------------------------------------------------------


# ---- otdoctor models (checkpoints) -------------------------------------------------------------


# ---- otdoctor install / fix / explain ----------------------------------------------------------


# ---- otdoctor smoke / estimate -----------------------------------------------------------------


# ---- config and dataset ------------------------------------------------------------------------


# ---- otdoctor report / merge -------------------------------------------------------------------


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
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            sys.stderr.write(f"otdoctor: error: {exc}\n")
        sys.exit(getattr(exc, "exit_code", 2))
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug: one line for the user, the traceback on request
        if os.environ.get("OTDOCTOR_DEBUG"):
            raise
        sys.stderr.write(redact(f"otdoctor: internal error: {type(exc).__name__}: {exc}") + "\n")
        sys.stderr.write("  run again with OTDOCTOR_DEBUG=1 to see the traceback, and please report it\n")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
