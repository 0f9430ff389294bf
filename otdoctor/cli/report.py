"""`otdoctor report`: a bug-report bundle, shown before anything is written."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from otdoctor.cli.options import ConfigOption, OfflineOption, OtDirOption

if TYPE_CHECKING:
    from otdoctor.report.bundle import Bundle


def _collect(ot_dir: Path | None, config: Path | None, offline: bool) -> Bundle:
    from otdoctor.probe import Probe
    from otdoctor.report.bundle import collect

    if not sys.stderr.isatty():
        return collect(Probe(), ot_dir, config, offline=offline)
    from rich.console import Console

    with Console(stderr=True).status("Collecting the report…") as status:
        return collect(Probe(), ot_dir, config, offline=offline, progress=lambda m: status.update(f"Report: {m}…"))


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
    or `nvidia-smi -q`, the config with its concepts, and the install log. Everything is
    anonymised: the home folder becomes ~, user and host names are replaced, tokens (environment,
    secrets.json, Authorization headers, ?token= in URLs, Hugging Face and Civitai keys) are removed.
    Nothing is written until you have seen it: --print shows it all; on a terminal without --output
    you are shown the summary and asked.
    """
    from otdoctor.render import human_bytes

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    bundle = _collect(ot_dir, config, offline)
    if print_:
        _show_all(bundle)
        if output is None:
            return
    if output is None and not interactive:
        # Nobody to ask: show what would be shared and write nothing.
        _show_all(bundle)
        sys.stderr.write("otdoctor: nothing written; add --output FILE to save the zip\n")
        return
    if output is None:
        output = _ask_where(bundle, yes)
    bundle.write(output)
    if not print_ and not interactive:
        sys.stdout.write(bundle.markdown)
    sys.stderr.write(
        f"otdoctor: wrote {output} ({human_bytes(output.stat().st_size)}, {len(bundle.files)} files). "
        "Paste the summary (summary.md) into the issue and attach the zip.\n"
    )
