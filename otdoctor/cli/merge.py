"""`otdoctor merge`: many machines' reports as one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otdoctor.cli.options import format_option


def merge_cmd(
    reports: Annotated[
        list[Path],
        typer.Argument(help="JSON reports from `otdoctor check --format json` (or a report zip's checks.json)."),
    ],
    fmt: Annotated[str, format_option(("text", "markdown", "json"), "text, markdown or json.")] = "text",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE.", dir_okay=False)] = None,
    all_checks: Annotated[
        bool, typer.Option("--all", help="Show every check column, not only those that differ or fail.")
    ] = False,
) -> None:
    """Combine per-machine reports into one table: machines as rows, checks as columns.

    Differences between machines (driver version, torch build, free VRAM, any check's verdict) are
    highlighted. Exit code 1 when any machine's report failed or could not be read.
    """
    from otdoctor.render.emit import emit
    from otdoctor.render.merge_table import FleetView
    from otdoctor.report import merge

    fleet = merge.load(reports)
    emit(FleetView(fleet, all_checks), fmt, output)
    raise typer.Exit(fleet.exit_code)
