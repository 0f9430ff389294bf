"""`otdoctor vram`: will this config fit on the GPU?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otdoctor.cli.options import TEXT_JSON, OtDirOption, config_option, format_option, require_config
from otdoctor.errors import UserError

ConfigOption = Annotated[
    Path | None,
    config_option("The training config to fit on the GPU (required): model, dtypes, batch size, resolution, EMA."),
]


def vram_cmd(
    config: ConfigOption = None,
    gpu: Annotated[
        str | None, typer.Option("--gpu", help="A GPU by name: the detected one of that name, else an empty card.")
    ] = None,
    free_gb: Annotated[
        float | None, typer.Option("--free-gb", help="VRAM to fit in, GiB (nvidia-smi MiB / 1024).")
    ] = None,
    ot_dir: OtDirOption = None,
    fmt: Annotated[str, format_option(TEXT_JSON, "Output format: text or json.")] = "text",
) -> None:
    """Predict the peak VRAM of one training step of CONFIG, component by component, and if it will
    not fit, the cheapest changes of its own settings that make it fit (as --config-value lines).

    Exit code 0 when it fits (or the free VRAM is unknown), 1 when it will not fit, 2 for a bad config.
    """
    from otdoctor.probe import Probe
    from otdoctor.render.emit import emit
    from otdoctor.render.vram_view import VramView
    from otdoctor.vram.report import vram_report

    if config is None:
        raise UserError("otdoctor vram needs a config: otdoctor vram --config CONFIG.json", exit_code=2)
    require_config(config)
    report = vram_report(config, ot_dir, Probe(), gpu, free_gb)
    emit(VramView(report), fmt)
    raise typer.Exit(1 if report.fits is False else 0)
