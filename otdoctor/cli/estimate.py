"""`otdoctor estimate`: steps and time of a planned run, or the finish of a running one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otdoctor.cli.options import TEXT_JSON, OtDirOption, config_option, format_option, request_from, require_config

ConfigOption = Annotated[
    Path | None,
    config_option(
        "Read epochs, batch size, model, resolution, caching and the image folders from this training config."
    ),
]

_UNITS = "NEVER, EPOCH, STEP, SECOND, MINUTE, HOUR."
Images = Annotated[int | None, typer.Option("--images", help="Training images (one concept, balancing 1).")]
Reg = Annotated[int | None, typer.Option("--reg", help="Regularisation images (a second concept).")]
Balancing = Annotated[
    float | None,
    typer.Option(
        "--balancing", help="Balancing of the regularisation concept (default: computed so it gives --want samples)."
    ),
]
Want = Annotated[
    int | None, typer.Option("--want", help="Regularisation samples wanted per epoch (default: as many as --images).")
]
Strategy = Annotated[
    str, typer.Option("--strategy", help="Regularisation balancing strategy: repeats or samples.", case_sensitive=False)
]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Epochs (default: from --config).")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Batch size (default: from --config, else 1).")]
Its = Annotated[float | None, typer.Option("--its", help="Training speed in it/s (steps per second).")]
FromSmoke = Annotated[
    bool, typer.Option("--from-smoke", help="Use the last `otdoctor smoke` result (the default when one exists).")
]
Gpu = Annotated[
    str | None, typer.Option("--gpu", help="GPU name: picks its smoke result, else a ROUGH reference speed.")
]
Model = Annotated[str | None, typer.Option("--model", help="sdxl or sd15 (default: from --config, else sdxl).")]
Resolution = Annotated[str | None, typer.Option("--resolution", help="OneTrainer's resolution setting, e.g. 1024.")]
SampleEvery = Annotated[
    float | None, typer.Option("--sample-every", help="Sampling interval (OneTrainer default 10 MINUTE).")
]
SampleUnit = Annotated[str | None, typer.Option("--sample-unit", help=_UNITS)]
SaveEvery = Annotated[float | None, typer.Option("--save-every", help="Save interval (default NEVER).")]
SaveUnit = Annotated[str | None, typer.Option("--save-unit", help=_UNITS)]
BackupEvery = Annotated[
    float | None, typer.Option("--backup-every", help="Backup interval (OneTrainer default 30 MINUTE).")
]
BackupUnit = Annotated[str | None, typer.Option("--backup-unit", help=_UNITS)]
LoadS = Annotated[float | None, typer.Option("--load-s", help="Model load seconds (default: smoke result or rough).")]
CachingRate = Annotated[float | None, typer.Option("--caching-rate", help="Latent caching, images per second.")]
WriteMbps = Annotated[float | None, typer.Option("--write-mbps", help="Disk write speed for saves, MB/s.")]
SampleS = Annotated[float | None, typer.Option("--sample-s", help="Seconds per sample image.")]
SaveGb = Annotated[
    float | None, typer.Option("--save-gb", help="Size of one save in GB (default: from model and output dtype).")
]
BackupBeforeSave = Annotated[
    bool | None,
    typer.Option(
        "--backup-before-save/--no-backup-before-save",
        help="A backup before the final save (OneTrainer's default: on).",
    ),
]
LatentCaching = Annotated[
    bool | None,
    typer.Option("--latent-caching/--no-latent-caching", help="Latent caching (default: from --config, else on)."),
]
Start = Annotated[str | None, typer.Option("--start", help="When the run starts (HH:MM or ISO; default now).")]
FromLog = Annotated[
    str | None,
    typer.Option(
        "--from-log", help="Read a running OneTrainer's output (a file, or - for stdin) and predict its finish."
    ),
]


def estimate_cmd(
    images: Images = None,
    reg: Reg = None,
    balancing: Balancing = None,
    want: Want = None,
    strategy: Strategy = "repeats",
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    its: Its = None,
    from_smoke: FromSmoke = False,
    gpu: Gpu = None,
    config: ConfigOption = None,
    ot_dir: OtDirOption = None,
    model: Model = None,
    resolution: Resolution = None,
    sample_every: SampleEvery = None,
    sample_unit: SampleUnit = None,
    save_every: SaveEvery = None,
    save_unit: SaveUnit = None,
    backup_every: BackupEvery = None,
    backup_unit: BackupUnit = None,
    load_s: LoadS = None,
    caching_rate: CachingRate = None,
    write_mbps: WriteMbps = None,
    sample_s: SampleS = None,
    save_gb: SaveGb = None,
    backup_before_save: BackupBeforeSave = None,
    latent_caching: LatentCaching = None,
    start: Start = None,
    from_log: FromLog = None,
    fmt: Annotated[str, format_option(TEXT_JSON, "text or json.")] = "text",
) -> None:
    """How many steps a run has, and how long it will take.

    Steps use OneTrainer's exact arithmetic (REPEATS floor(images x balancing), SAMPLES
    int(balancing), aspect buckets dropping incomplete batches when --config gives image folders).
    Time = model load + latent caching + steps / it/s + sampling + saves and backups, with a range
    from the measured spread. Where the it/s comes from is always said.
    """
    options = dict(locals())  # the request takes most options by name
    from otdoctor.estimate import plan as planner
    from otdoctor.onetrainer.config import run_folder
    from otdoctor.probe import Probe
    from otdoctor.render.emit import emit
    from otdoctor.render.plan import EstimateView

    require_config(config)
    # OneTrainer's folder, found as `check` finds it: relative concept paths start there.
    options["ot_dir"] = ot_dir = run_folder(ot_dir, Probe()) if config is not None else ot_dir
    if from_log is not None:
        emit(EstimateView(planner.predict_from_log(from_log, config, ot_dir, model, start), True), fmt)
        return
    req = request_from(planner.EstimateRequest, options, start=planner.start_time(start))
    emit(EstimateView(planner.build(req)), fmt)
