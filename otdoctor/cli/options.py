"""Options several commands share, and the one --format option with its validation."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from otdoctor.errors import UserError

OtDirOption = Annotated[
    Path | None,
    typer.Option(
        "--ot-dir",
        help="OneTrainer checkout. Default: $OT_DIR, the current folder, ~/Projects/OneTrainer, ~/OneTrainer.",
        file_okay=False,
        readable=False,  # one the user cannot read is a finding ("cannot read X"), not a usage error
    ),
]


def config_option(help: str) -> Any:
    """`--config FILE`, with the help of the command that takes it (each reads the config its own way)."""
    return typer.Option("--config", help=help, dir_okay=False)


ModelsDirOption = Annotated[
    list[Path] | None, typer.Option("--models-dir", help="A folder where you keep checkpoints. Repeatable.")
]
OfflineOption = Annotated[
    bool, typer.Option("--offline", help="No network access at all; checks that need it are skipped.")
]
JsonAliasOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.", hidden=True)]

TEXT_JSON = ("text", "json")
R = TypeVar("R")


def _choices(choices: tuple[str, ...]) -> str:
    return " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)


def format_option(choices: tuple[str, ...], help: str, echo_as_typed: bool = False) -> Any:
    """`--format/-f`, lower-cased and checked against `choices` while the command line is parsed.

    An unknown format is a usage error (exit 2) before any work starts. `explain` always quoted the
    value as typed in that message, the other commands lower-cased: `echo_as_typed` keeps both.
    """

    def validate(value: str) -> str:
        fmt = value.lower()
        if fmt not in choices:
            shown = value if echo_as_typed else fmt
            raise UserError(f"unknown --format {shown!r}; choose {_choices(choices)}", exit_code=2)
        return fmt

    return typer.Option("--format", "-f", help=help, case_sensitive=False, callback=validate)


def require_config(config: Path | None) -> None:
    if config is None:
        return
    try:
        regular, exists = config.is_file(), config.exists()
    except OSError as exc:  # a name too long for the filesystem
        raise UserError(f"cannot read config {config}: {exc.strerror or exc}", exit_code=2) from None
    if not regular:
        raise UserError(
            f"config {config} is not a regular file" if exists else f"config file not found: {config}", exit_code=2
        )


def require_ot_dir(ot_dir: Path | None) -> None:
    """An --ot-dir that is not there is a usage error, not a checkout to offer fixes for."""
    if ot_dir is not None and not ot_dir.exists():
        raise UserError(
            f"OneTrainer checkout not found: {ot_dir}",
            exit_code=2,
            hint=f"correct --ot-dir, or install OneTrainer there: otdoctor install --dir {ot_dir}",
        )


def confirmer(yes: bool) -> Callable[[str], bool]:
    """--yes answers every question; without a terminal to ask on, a question is a usage error."""

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UserError(f"{question}\n  (no terminal to ask on: pass --yes to answer yes)", exit_code=2)
        return typer.confirm(question, default=True)

    return confirm


def request_from(cls: type[R], options: Mapping[str, Any], **computed: Any) -> R:
    """A request dataclass built from a command's options: each field takes the option of its name,
    except the `computed` ones (options the command converted or renamed)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{**{k: v for k, v in options.items() if k in names}, **computed})
