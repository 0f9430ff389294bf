"""`otdoctor fix`: repair what `otdoctor check` found."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otdoctor.cli.mirror_options import GitMirrorOption, MirrorsFileOption, PipArgOption, probe_env
from otdoctor.cli.options import ModelsDirOption, OtDirOption, config_option, confirmer, require_config, require_ot_dir

ConfigOption = Annotated[
    Path | None,
    config_option(
        "The training config whose findings to repair (its concepts and images). Default: the "
        "UI's last-used state, training_presets/#.json in the checkout."
    ),
]


def fix_cmd(
    check_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these checks (id, id prefix or area). Default: every failing check that can be fixed."
        ),
    ] = None,
    ot_dir: OtDirOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what each fix would run; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before each fix.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="gpu.vram: also SIGKILL the processes that ignore SIGTERM (without it, they are only sent SIGTERM).",
        ),
    ] = False,
    models_dir: ModelsDirOption = None,
    config: ConfigOption = None,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place", help="dataset.resolution: replace the original images instead of writing a new folder."
        ),
    ] = False,
    git_mirror: GitMirrorOption = None,
    mirrors: MirrorsFileOption = None,
    pip_arg: PipArgOption = None,
) -> None:
    """Repair what `otdoctor check` found: show each fix as commands, ask, run it, check again.

    Exit code 0 when every selected check passes afterwards, 1 otherwise. What cannot be repaired
    automatically (a space in the path, a FAT32 drive, a driver update) is printed as manual steps.
    """
    from otdoctor.engine.fixer import FixRequest, fix
    from otdoctor.probe import Probe
    from otdoctor.render.fix_view import FixView
    from otdoctor.render.progress import BarReporter
    from otdoctor.render.text import console

    require_config(config)
    require_ot_dir(ot_dir)
    out = console()
    view = FixView(out, confirmer(yes))
    request = FixRequest(
        patterns=tuple(check_ids or ()),
        ot_dir=ot_dir,
        config=config,
        models_dirs=tuple(models_dir or ()),
        dry_run=dry_run,
        yes=yes,
        force=force,
        in_place=in_place,
    )
    raise typer.Exit(fix(Probe(env=probe_env(git_mirror, mirrors, pip_arg)), request, view, BarReporter(out)))
