"""`otdoctor smoke`: a short real training run, measured, with optional CI gates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from otdoctor.cli.options import TEXT_JSON, OtDirOption, config_option, format_option, request_from, require_config
from otdoctor.errors import UserError
from otdoctor.redact import redact

ConfigOption = Annotated[
    Path | None,
    config_option(
        "Run the smoke with this training config's model type, resolution, batch size, dtype and base model."
    ),
]

Steps = Annotated[int, typer.Option("--steps", help="Steps to measure, after the warm-up.")]
Warmup = Annotated[int, typer.Option("--warmup", help="First steps left out of the speed (CUDA warm-up).")]
Synthetic = Annotated[
    bool,
    typer.Option("--synthetic", help="Train a UNet with random weights instead of OneTrainer (no download needed)."),
]
Tiny = Annotated[
    bool,
    typer.Option("--tiny", help="Synthetic run of a toy UNet on the CPU: proves torch+diffusers train, in seconds."),
]
Model = Annotated[str | None, typer.Option("--model", help="sdxl or sd15 (default: from --config, else sdxl).")]
Resolution = Annotated[int | None, typer.Option("--resolution", help="Training resolution in pixels.")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Images per step.")]
Dtype = Annotated[
    str | None, typer.Option("--dtype", help="bf16, fp16 or fp32 (default: the config's train dtype, else bf16).")
]
Keep = Annotated[
    bool, typer.Option("--keep", help="Keep the temporary folder (config, dataset, workspace) for inspection.")
]
Python = Annotated[
    Path | None,
    typer.Option(
        "--python",
        help="Interpreter with torch and diffusers for --synthetic (default: OneTrainer's venv).",
        dir_okay=False,
    ),
]
BaseModel = Annotated[
    str | None,
    typer.Option("--base-model", help="Base model for OneTrainer mode (default: the config's base_model_name)."),
]
Set = Annotated[list[str] | None, typer.Option("--set", help="Extra OneTrainer --config-value KEY=VALUE. Repeatable.")]
Device = Annotated[str, typer.Option("--device", help="Synthetic: auto, cuda or cpu.")]
NoCheckpointing = Annotated[
    bool, typer.Option("--no-gradient-checkpointing", help="Synthetic: train without gradient checkpointing.")
]
FusedBackPass = Annotated[
    bool | None,
    typer.Option(
        "--fused-back-pass/--no-fused-back-pass",
        help="Synthetic: step each parameter during backward (default: from --config).",
    ),
]
MinIts = Annotated[
    float | None, typer.Option("--min-its", help="Fail (exit 1) when slower than this many it/s (CI gate).")
]
MaxVramGb = Annotated[
    float | None, typer.Option("--max-vram-gb", help="Fail (exit 1) when peak VRAM exceeds this many GB (CI gate).")
]
TimeoutS = Annotated[float, typer.Option("--timeout-s", help="Give up after this many seconds.")]


def _check_choices(dtype: str | None, model: str | None) -> None:
    if dtype is not None and dtype not in ("bf16", "fp16", "fp32"):
        raise UserError(f"unknown --dtype {dtype!r}; choose bf16, fp16 or fp32", exit_code=2)
    if model is not None and model not in ("sdxl", "sd15", "tiny"):
        raise UserError(f"unknown --model {model!r}; choose sdxl or sd15", exit_code=2)


class _StatusLine:
    """The run on stderr, text format only: a live status on a terminal, else one "running" line."""

    def __init__(self, text: bool) -> None:
        from otdoctor.render.progress import smoke_status

        self.text = text
        self.progress = smoke_status(sys.stderr.isatty() and text)

    def started(self) -> None:
        if self.progress is None and self.text:
            sys.stderr.write("otdoctor smoke: running (this takes a while)…\n")

    def notice(self, line: str) -> None:
        sys.stderr.write(redact(f"otdoctor smoke: {line}") + "\n")

    def finished(self) -> None:
        from otdoctor.render.progress import clear_status_line

        if self.progress is not None:
            clear_status_line()


def smoke_cmd(
    ot_dir: OtDirOption = None,
    config: ConfigOption = None,
    steps: Steps = 20,
    warmup: Warmup = 3,
    synthetic: Synthetic = False,
    tiny: Tiny = False,
    model: Model = None,
    resolution: Resolution = None,
    batch_size: BatchSize = None,
    dtype: Dtype = None,
    keep: Keep = False,
    python: Python = None,
    base_model: BaseModel = None,
    set_: Set = None,
    device: Device = "auto",
    no_checkpointing: NoCheckpointing = False,
    fused_back_pass: FusedBackPass = None,
    min_its: MinIts = None,
    max_vram_gb: MaxVramGb = None,
    timeout_s: TimeoutS = 3600.0,
    fmt: Annotated[str, format_option(TEXT_JSON, "text or json.")] = "text",
) -> None:
    """Prove this machine trains, and measure how fast: a short real training run.

    OneTrainer mode (a checkout, its venv and the base model present): runs OneTrainer's own
    scripts/train.py on a tiny dataset in a temporary folder, one epoch, no sampling, saves or
    backups, and stops it cleanly after the measured steps. Synthetic mode (--synthetic, or no base
    model yet): trains the architecture's UNet with random weights. The result (it/s with spread,
    peak VRAM, model load, caching rate) is saved for `otdoctor estimate`.
    """
    options = dict(locals())  # the request takes most options by name
    from otdoctor.render.emit import emit
    from otdoctor.render.plan import SmokeView
    from otdoctor.smoke import SmokeRequest
    from otdoctor.smoke.gates import Gates
    from otdoctor.smoke.job import run_job

    _check_choices(dtype, model)
    require_config(config)
    req = request_from(
        SmokeRequest,
        options,
        overrides=tuple(set_ or ()),
        gradient_checkpointing=False if no_checkpointing else None,
    )
    done = run_job(req, Gates(min_its, max_vram_gb), _StatusLine(fmt == "text"))
    emit(SmokeView(done.result, done.saved_to, done.why, done.failures), fmt)
    raise typer.Exit(1 if done.failures else 0)
