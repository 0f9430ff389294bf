"""The root Typer application: its help, --version, and the settings every command shares."""

from __future__ import annotations

from typing import Annotated

import typer

from otdoctor import __version__

app = typer.Typer(
    name="otdoctor",
    help="Environment and hardware doctor, installer and planner for OneTrainer.\n\n"
    "Start with `otdoctor check`: it finds your OneTrainer checkout, looks at Python, the venv, "
    "the GPU, checkpoints and config, and says what to fix.",
    no_args_is_help=True,
    add_completion=True,
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
