"""`otdoctor explain`: recognise known problems in OneTrainer's output."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from otdoctor.cli.options import TEXT_JSON, format_option
from otdoctor.errors import UserError


def explain_cmd(
    logfile: Annotated[
        str | None,
        typer.Argument(help="A log file with OneTrainer's output, or - for stdin.", metavar="[LOGFILE|-]"),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the known problems and the OneTrainer issues they come from.")
    ] = False,
    fmt: Annotated[str, format_option(TEXT_JSON, "text or json.", echo_as_typed=True)] = "text",
) -> None:
    """Explain OneTrainer's error output: a traceback, a failed install log, a training log.

    Matches the text against the problems OneTrainer users reported on its issue tracker and prints,
    for each one found, the diagnosis, the fix and the otdoctor command that applies it. Reads the
    last 8 MB of a long log. Exit code 0 when a known problem was recognised, 1 when none was.
    """
    from otdoctor.render.emit import emit

    if list_:
        if logfile is not None:
            raise UserError("--list takes no log file: give one or the other", exit_code=2)
        from otdoctor.explain.table import known_problems
        from otdoctor.render.explain_view import KnownProblemsView

        emit(KnownProblemsView(known_problems()), fmt)
        return
    from otdoctor.explain.known_problems import explain_text, last_error_line, read_input
    from otdoctor.render.explain_view import ExplainView

    if logfile is None:
        if sys.stdin.isatty():
            raise UserError(
                "give a log file, or pipe the output in: ./start-ui.sh 2>&1 | otdoctor explain -", exit_code=2
            )
        logfile = "-"
    source = read_input(logfile)
    matches = explain_text(source)
    emit(ExplainView(matches, last_error_line(source)), fmt)
    raise typer.Exit(0 if matches else 1)
