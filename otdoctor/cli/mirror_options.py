"""The options `install` and `fix` share for installing without GitHub: git mirrors and pip's options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

GitMirrorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--git-mirror",
        metavar="NAME=URL",
        help="Read a git repository from a mirror: NAME is OWNER/NAME on GitHub (huggingface/diffusers) or a URL "
        "prefix; URL a URL or local path. Repeatable; covers the OneTrainer clone and pip's git requirements.",
    ),
]
MirrorsFileOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--mirrors",
        help='A TOML file of mirrors: [git] NAME = "URL" lines, [pip] args = [...]. Repeatable.',
        dir_okay=False,
    ),
]
PipArgOption = Annotated[
    list[str] | None,
    typer.Option(
        "--pip-arg",
        metavar="--OPTION[=VALUE]",
        help="A pip option for every pip run, as --pip-arg=--index-url=URL or --pip-arg=--find-links=DIR. Repeatable.",
    ),
]


def probe_env(
    git_mirror: list[str] | None, mirrors: list[Path] | None, pip_arg: list[str] | None
) -> dict[str, str] | None:
    """The environment git and pip should run in, or None when no option asks for a change."""
    from otdoctor.install.mirrors import check_mirrors, gather
    from otdoctor.probe import Probe

    if not (git_mirror or mirrors or pip_arg):
        return None
    sources = gather(git_mirror or (), mirrors or (), pip_arg or (), Path.cwd())
    check_mirrors(Probe(), sources.mirrors)
    return sources.env(os.environ)
