"""`otdoctor install`: OneTrainer the way the guide installs it, re-runnable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otdoctor.cli.mirror_options import GitMirrorOption, MirrorsFileOption, PipArgOption, probe_env
from otdoctor.cli.options import confirmer

Dir = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Where OneTrainer goes. Default: ~/Projects/OneTrainer (the guide's place).", file_okay=False
    ),
]
RepoUrl = Annotated[
    str | None,
    typer.Option("--repo-url", help="Repository to clone (URL or local path). Default: upstream Nerogar/OneTrainer."),
]
Ref = Annotated[
    str | None,
    typer.Option("--ref", help="Branch, tag or commit to check out. Default: the repository's default branch."),
]
Python = Annotated[
    str | None,
    typer.Option(
        "--python", help="Python version for pyenv (X.Y or X.Y.Z), within what the checkout accepts. Default: 3.10."
    ),
]
Platform = Annotated[
    str,
    typer.Option(
        "--platform",
        help="Requirements: auto (detect like the launcher, plus GPU generation), cuda, cuda-legacy, rocm or cpu.",
    ),
]


def install_cmd(
    dir_: Dir = None,
    repo_url: RepoUrl = None,
    ref: Ref = None,
    python: Python = None,
    platform: Platform = "auto",
    git_mirror: GitMirrorOption = None,
    mirrors: MirrorsFileOption = None,
    pip_arg: PipArgOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; answer yes to every question.")] = False,
) -> None:
    """Install OneTrainer the way the guide does: clone, pyenv Python, venv, requirements, then check.

    Re-runnable: after Ctrl-C, a kill or a lost network, run the same command again and it continues;
    phases already done are verified and skipped. User data (workspace, models, training_concepts,
    secrets.json) is never touched; a broken venv is moved aside and removed only after the new one
    works. pip's output is kept whole in <dir>/otdoctor-install.log. Honours OT_PLATFORM_REQUIREMENTS
    and pip's own environment (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX...). Without GitHub access,
    --git-mirror/--mirrors read OneTrainer and its git requirements from mirrors (through git's
    insteadOf, set in the environment of git and pip) and --pip-arg passes pip's index options.
    """
    from otdoctor.install.installer import InstallOptions
    from otdoctor.install.run import STAGE_COUNT, run_install
    from otdoctor.probe import Probe
    from otdoctor.render.install_view import InstallView
    from otdoctor.render.text import console

    env = probe_env(git_mirror, mirrors, pip_arg)
    view = InstallView(console(), confirmer(yes), total_phases=STAGE_COUNT)
    opts = InstallOptions(dir_, repo_url, ref, python, platform.lower(), dry_run, yes)
    result = run_install(opts, view, Probe(env=env))
    view.show_result(result)
    raise typer.Exit(result.exit_code)
