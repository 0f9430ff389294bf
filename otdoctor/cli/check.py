"""`otdoctor check`: run the checks and report them as text, JSON, JUnit XML or GitHub annotations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from otdoctor.cli.options import (
    ModelsDirOption,
    OfflineOption,
    OtDirOption,
    config_option,
    format_option,
    require_config,
)
from otdoctor.render import FORMATS

ConfigOption = Annotated[
    Path | None,
    config_option(
        "A OneTrainer training config (exported JSON or preset) to check with its concepts, "
        "images and base model. Default: the UI's last-used state, training_presets/#.json in "
        "the checkout."
    ),
]

FormatOption = Annotated[str, format_option(FORMATS, "Output format: text, json, junit or github.")]


def check_cmd(
    ot_dir: OtDirOption = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these checks (id, id prefix or area). Repeatable.")
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="Leave out these checks (id, id prefix or area). Repeatable.")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List every check with its id, area and whether it can fix.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show details of passing checks and tracebacks.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    fmt: FormatOption = "text",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to FILE.", dir_okay=False)
    ] = None,
    offline: OfflineOption = False,
    config: ConfigOption = None,
    models_dir: ModelsDirOption = None,
    require_gpu: Annotated[
        bool, typer.Option("--require-gpu", help="No usable NVIDIA GPU is a failure (for GPU runners' CI pre-flight).")
    ] = False,
) -> None:
    """Diagnose OneTrainer's environment: Python, venv, GPU, checkpoints, config, disk.

    Exit code 0 when healthy (warnings allowed), 1 when a required check failed or crashed.
    """
    from otdoctor.engine.doctor import make_context, run_doctor, selected_checks
    from otdoctor.probe import Probe
    from otdoctor.render.check_view import CheckListView, CheckView
    from otdoctor.render.emit import emit
    from otdoctor.render.progress import checking_spinner

    if list_:
        emit(CheckListView(selected_checks(only or (), skip or ())), fmt, output)
        return
    require_config(config)
    ctx = make_context(Probe(), ot_dir, config, models_dir or (), offline=offline, require_gpu=require_gpu)
    with checking_spinner(fmt == "text" and output is None and sys.stdout.isatty()) as progress:
        if progress is not None:
            ctx.options.extra["progress"] = progress  # long checks (image scans) report here
        report = run_doctor(ctx, only or (), skip or ())
    emit(CheckView(report, verbose=verbose, strict=strict), fmt, output)
    raise typer.Exit(report.exit_code(strict))
