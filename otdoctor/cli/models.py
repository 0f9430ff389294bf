"""`otdoctor models list|verify|download`: the checkpoint catalog, what is on disk, and downloads."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from otdoctor.cli.options import (
    TEXT_JSON,
    JsonAliasOption,
    ModelsDirOption,
    OtDirOption,
    config_option,
    format_option,
    require_config,
)

ConfigOption = Annotated[
    Path | None,
    config_option("Also look for the base model this training config names."),
]

if TYPE_CHECKING:
    from otdoctor.checkpoints.query import ModelsQuery

models_app = typer.Typer(
    help="Checkpoints: list the catalog and what is on disk, verify files, download models.\n\n"
    "The catalog (RealVisXL V4.0, Hyper Realism V3, plus your own entries in "
    "~/.config/otdoctor/models.toml) says what each file must be: size, sha256, architecture.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
FormatOption = Annotated[str, format_option(TEXT_JSON, "Output format: text or json.")]


def _query(ot_dir: Path | None, config: Path | None, models_dir: list[Path] | None) -> ModelsQuery:
    from otdoctor.checkpoints.query import ModelsQuery

    require_config(config)
    return ModelsQuery(ot_dir, config, tuple(models_dir or ()))


@models_app.command("list")
def models_list_cmd(
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    models_dir: ModelsDirOption = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also list every model repository in the Hugging Face cache.")
    ] = False,
    fmt: FormatOption = "text",
    json_: JsonAliasOption = False,
) -> None:
    """Show the catalog, where each model was found and its state (from the verify cache; reads no file whole)."""
    from otdoctor.checkpoints.query import list_models
    from otdoctor.probe import Probe
    from otdoctor.render.emit import emit
    from otdoctor.render.models import ModelsListView

    query = _query(ot_dir, config, models_dir)
    inv, repos = list_models(Probe(), query, all_)
    emit(ModelsListView(inv, repos), "json" if json_ else fmt)


@models_app.command("verify")
def models_verify_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to verify. Default: every model found.")
    ] = None,
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    models_dir: ModelsDirOption = None,
    no_hash: Annotated[
        bool, typer.Option("--no-hash", help="Check structure, size and architecture only; skip sha256.")
    ] = False,
    fmt: FormatOption = "text",
    json_: JsonAliasOption = False,
) -> None:
    """Verify checkpoints: complete, not an HTML page or git-lfs pointer, right architecture and sha256.

    sha256 results are cached by file identity (device, inode, size, mtime, ctime), so verifying an
    unchanged file again does not read it. Exit code 1 when any file is bad.
    """
    from otdoctor.checkpoints.query import verify_models
    from otdoctor.probe import Probe
    from otdoctor.render.emit import emit
    from otdoctor.render.models import VerdictsView, hash_progress

    fmt = "json" if json_ else fmt
    query = _query(ot_dir, config, models_dir)
    show_bar = sys.stderr.isatty() and fmt == "text"
    inv, verdicts = verify_models(Probe(), query, paths or (), not no_hash, lambda: hash_progress(show_bar))
    emit(VerdictsView.of_inventory(verdicts, inv), fmt)
    raise typer.Exit(1 if any(v.problems for v in verdicts) else 0)


@models_app.command("download")
def models_download_cmd(
    name: Annotated[
        str, typer.Argument(help="Catalog name (otdoctor models list), e.g. realvisxl-v4 or hyper-realism-v3.")
    ],
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest",
            help="Folder to save into. Default: the Hugging Face cache (HF models) or the "
            "OneTrainer checkout's models/ folder (Civitai models).",
            file_okay=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="File holding your Civitai API key (default: $CIVITAI_TOKEN).", dir_okay=False
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Take the expected size and sha256 from otdoctor's catalog, not the Civitai API."
        ),
    ] = False,
    retries: Annotated[
        int, typer.Option("--retries", help="Resume this many times within one run when the connection drops.", min=0)
    ] = 2,
    ot_dir: OtDirOption = None,
) -> None:
    """Download a catalog model and verify it (size, structure, architecture, sha256).

    Civitai downloads stream into NAME.part and resume from there when run again; the file gets its
    final name only once it matches. Hugging Face downloads go through huggingface_hub.
    """
    from otdoctor.checkpoints.download import DownloadRequest, download_model
    from otdoctor.probe import Probe
    from otdoctor.render.download_view import DownloadView
    from otdoctor.render.text import console

    view = DownloadView(console(), sys.stderr.isatty())
    done = download_model(Probe(), DownloadRequest(name, dest, token_file, offline, retries, ot_dir), view)
    view.show(done)
    mismatch = done.mismatch()
    if mismatch is not None:
        raise mismatch
