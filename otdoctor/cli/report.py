"""`otdoctor report`: a bug-report bundle, shown before anything is written."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from otdoctor.cli.options import OfflineOption, OtDirOption, config_option

ConfigOption = Annotated[
    Path | None,
    config_option("A training config to put in the bundle, with its concepts file (secrets and user paths removed)."),
]

if TYPE_CHECKING:
    from otdoctor.report.bundle import Bundle


def _show_all(bundle: Bundle) -> None:
    from otdoctor.render.emit import Destination
    from otdoctor.render.report_md import bundle_text

    Destination().write(bundle_text(bundle.markdown, bundle.files))


def _ask_where(bundle: Bundle, yes: bool) -> Path:
    """On a terminal without --output: show the summary, then ask before writing the default zip."""
    from otdoctor.render.report_md import bundle_contents
    from otdoctor.report.bundle import default_output

    target = default_output()
    sys.stdout.write(bundle_contents(bundle.markdown, bundle.files))
    while not yes:
        answer = typer.prompt(f"Write {target}? [y]es, [n]o, [s]how every file", default="n").strip().lower()
        if answer.startswith("s"):
            _show_all(bundle)
        elif answer.startswith("y"):
            break
        else:
            sys.stderr.write("otdoctor: nothing written\n")
            raise typer.Exit(1)
    return target


def report_cmd(
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the zip here (default on a terminal, after you confirm: "
            "otdoctor-report-DATE.zip in the current folder).",
            dir_okay=False,
        ),
    ] = None,
    print_: Annotated[
        bool, typer.Option("--print", help="Show everything that would be shared (summary and every file) on stdout.")
    ] = False,
    offline: OfflineOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Write without asking.")] = False,
) -> None:
    """A bug-report bundle: a Markdown summary to paste into a GitHub issue, and a zip to attach.

    The zip holds the full JSON check results, `pip freeze` of OneTrainer's venv, the NVML snapshot
    or `nvidia-smi -q`, the config with its concepts, the install log, and the environment
    variables on an allowlist (CUDA_*, PYTORCH_*, HF_HOME, PATH...; no other). Everything is
    anonymised: the home folder becomes ~, user and host names are replaced, secrets are removed
    (secret-named variables, options and keys such as --wandb-key, secrets.json, the Hugging Face
    token file, credentials in URLs, token shapes). A part that cannot be read is named in the
    summary ("cannot read X (permission denied)") and the rest is still written.
    Nothing is written until you have seen it: --print shows it all; on a terminal without --output
    you are shown the summary and asked.
    """
    from otdoctor.probe import Probe
    from otdoctor.render.progress import collecting_status
    from otdoctor.render.report_md import written_note
    from otdoctor.report.bundle import collect, sharing

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    with collecting_status(sys.stderr.isatty()) as progress:
        bundle = collect(Probe(), ot_dir, config, offline=offline, progress=progress)
    plan = sharing(print_, output, interactive)
    if plan.show_all:
        _show_all(bundle)
    if not plan.write:
        if plan.suggest_output:
            sys.stderr.write("otdoctor: nothing written; add --output FILE to save the zip\n")
        return
    target = _ask_where(bundle, yes) if output is None else output
    bundle.write(target)
    if plan.echo_summary:
        sys.stdout.write(bundle.markdown)
    sys.stderr.write(written_note(target, target.stat().st_size, len(bundle.files)))
