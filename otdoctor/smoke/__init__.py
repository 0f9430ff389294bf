"""`otdoctor smoke`: choose the mode, run it, save the result. See `run.py` for the two modes."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from otdoctor.errors import UserError
from otdoctor.onetrainer.checkout import find_checkout
from otdoctor.onetrainer.config import TrainConfig, load_config
from otdoctor.probe import Probe
from otdoctor.smoke.onetrainer_mode import base_model_present, run_onetrainer
from otdoctor.smoke.results import SmokeResult
from otdoctor.smoke.run import Progress, SmokeOptions, noop, unet_models
from otdoctor.smoke.synthetic_mode import run_synthetic

DTYPE_SHORT = {"BFLOAT_16": "bf16", "FLOAT_16": "fp16", "FLOAT_32": "fp32"}
_NO_INTERPRETER_HINT = (
    "pass --python /path/to/venv/bin/python (any venv with torch and diffusers), or install OneTrainer"
)


def venv_python(ot_dir: Path) -> Path:
    if sys.platform == "win32":
        return ot_dir / "venv" / "Scripts" / "python.exe"
    return ot_dir / "venv" / "bin" / "python"


@dataclass
class SmokeRequest:
    ot_dir: Path | None = None
    config: Path | None = None
    synthetic: bool = False
    tiny: bool = False
    model: str | None = None
    resolution: int | None = None
    batch_size: int | None = None
    dtype: str | None = None
    steps: int = 20
    warmup: int = 3
    keep: bool = False
    python: Path | None = None
    base_model: str | None = None
    overrides: tuple[str, ...] = ()
    device: str = "auto"
    gradient_checkpointing: bool | None = None
    fused_back_pass: bool | None = None
    timeout_s: float = 3600.0


def _check_numbers(req: SmokeRequest) -> None:
    if req.steps < 1 or req.warmup < 0:
        raise UserError("--steps must be >= 1 and --warmup >= 0", exit_code=2)
    if req.batch_size is not None and req.batch_size < 1:
        raise UserError(f"--batch-size must be 1 or more, got {req.batch_size}", exit_code=2)
    if req.resolution is not None and req.resolution < 8:
        raise UserError(f"--resolution must be a pixel size such as 512 or 1024, got {req.resolution}", exit_code=2)
    if req.device not in ("auto", "cuda", "cpu"):
        raise UserError(f"unknown --device {req.device!r}; choose auto, cuda or cpu", exit_code=2)
    if not req.timeout_s > 0:  # also refuses nan
        raise UserError(f"--timeout-s must be a positive number of seconds, got {req.timeout_s:g}", exit_code=2)


def check_request(req: SmokeRequest) -> SmokeRequest:
    """Refuse impossible options before anything runs; returns the request with --python made absolute
    (a bare relative name would otherwise be looked up on PATH by the subprocess and crash)."""
    _check_numbers(req)
    for item in req.overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set wants KEY=VALUE (got {item!r})", exit_code=2)
    if req.python is not None:
        python = Path(req.python).expanduser().absolute()
        # A missing one is reported later, after the notice saying why this mode was chosen.
        if python.exists() and (not python.is_file() or not os.access(python, os.X_OK)):
            raise UserError(f"--python: {req.python} is not an executable Python interpreter", exit_code=2)
        req = replace(req, python=python)
    return req


def _checkout(req: SmokeRequest) -> Path | None:
    """The OneTrainer checkout to use (None: none found); an --ot-dir that is not one is an error."""
    located = find_checkout(Probe(), req.ot_dir)
    ot_dir = located.path if located.path is not None and (located.path / "scripts" / "train.py").is_file() else None
    if req.ot_dir is not None and ot_dir is None:
        raise UserError(f"{req.ot_dir} is not a OneTrainer checkout (no scripts/train.py)", exit_code=2)
    return ot_dir


def _user_config(req: SmokeRequest, ot_dir: Path | None) -> tuple[TrainConfig | None, dict[str, Any] | None]:
    """The --config as read, and its raw dict with concepts from a concepts file put inline."""
    if req.config is None:
        return None, None
    cfg = load_config(req.config, ot_dir)
    raw = dict(cfg.raw)
    if cfg.concepts and cfg.concepts_source == "inline":
        raw["concepts"] = [dict(c.raw) for c in cfg.concepts]
    return cfg, raw


def _model(req: SmokeRequest, cfg: TrainConfig | None) -> str:
    if req.tiny:
        return "tiny"
    return req.model or (("sdxl" if cfg.is_sdxl else "sd15") if cfg else "sdxl")


def _dtype(req: SmokeRequest, cfg: TrainConfig | None) -> str:
    from_config = DTYPE_SHORT.get(str(cfg.get("train_dtype"))) if cfg else None
    return req.dtype or from_config or ("fp32" if req.tiny else "bf16")


def _resolution(req: SmokeRequest, cfg: TrainConfig | None) -> int | None:
    if req.resolution is not None or cfg is None or req.tiny:
        return req.resolution
    try:
        return int(str(cfg.get("resolution")).split(",")[0].split("x")[0])
    except ValueError:
        return None


def _fused_back_pass(req: SmokeRequest, cfg: TrainConfig | None) -> bool:
    if req.fused_back_pass is not None:
        return req.fused_back_pass
    return bool(cfg.get("optimizer.fused_back_pass", False)) if cfg else False


def _options(req: SmokeRequest, cfg: TrainConfig | None) -> SmokeOptions:
    """The run's settings: the options given, else the config's, else the defaults."""
    return SmokeOptions(
        model=_model(req, cfg),
        resolution=_resolution(req, cfg),
        batch_size=req.batch_size or (int(cfg.get("batch_size")) if cfg else 1),
        dtype=_dtype(req, cfg),
        steps=req.steps,
        warmup=req.warmup,
        gradient_checkpointing=True if req.gradient_checkpointing is None else req.gradient_checkpointing,
        fused_back_pass=_fused_back_pass(req, cfg),
        keep=req.keep,
        device="cpu" if req.tiny and req.device == "auto" else req.device,
        timeout_s=req.timeout_s,
        overrides=list(req.overrides),
    )


def _why_synthetic(ot_dir: Path | None, base_model: str | None) -> str | None:
    """Why OneTrainer mode cannot run here (None: it can)."""
    if ot_dir is None:
        return "no OneTrainer checkout found: running the synthetic UNet instead"
    if not venv_python(ot_dir).exists():
        return f"OneTrainer's venv is missing ({venv_python(ot_dir)}): synthetic run instead"
    if not base_model:
        return "no base model named (pass --config or --base-model): synthetic run instead"
    if not base_model_present(base_model, ot_dir):
        return f"base model {base_model} is not downloaded yet: synthetic run instead"
    return None


def _synthetic(
    req: SmokeRequest, ot_dir: Path | None, opts: SmokeOptions, why: list[str], progress: Progress
) -> SmokeResult:
    if req.python is not None and not Path(req.python).exists():
        raise UserError(f"--python: interpreter not found: {req.python}", exit_code=2)
    python = req.python or (venv_python(ot_dir) if ot_dir is not None else None)
    if python is None or not Path(python).exists():
        raise UserError(
            "no interpreter with torch and diffusers for the synthetic run",
            exit_code=2,
            hint=_NO_INTERPRETER_HINT,
        )
    if opts.model == "tiny" and req.model not in (None, "tiny"):
        why.append("--tiny: the toy UNet, not " + str(req.model))
    return run_synthetic(Path(python), opts, progress)


# Measured: the synthetic SDXL UNet at 1024 px on a CPU held 14.7 GB of RAM and took minutes a step.
CPU_FALLBACK = (
    "no NVIDIA GPU: the synthetic {model} UNet at {resolution} px would take minutes a step on this CPU "
    "and about 15 GB of RAM, so this runs the toy UNet (--tiny) instead, which proves torch and "
    "diffusers train here; to measure {model} on the CPU anyway: otdoctor smoke --synthetic --model "
    "{model} --resolution 512 --steps 3 --warmup 1"
)


def _fit_the_machine(req: SmokeRequest, opts: SmokeOptions, why: list[str], notice: Any) -> SmokeOptions:
    """A fallback to the synthetic UNet that nobody sized: on a machine without an NVIDIA GPU, the
    SDXL default would not finish in any useful time, so the toy UNet runs, and the line says so."""
    from otdoctor.probe.nvml import gpu_name_and_driver

    chosen = req.model or req.resolution or req.batch_size or req.config or req.device != "auto"
    if chosen or gpu_name_and_driver()[0] is not None:
        return opts
    resolution = unet_models()[opts.model]["default_resolution"]
    line = CPU_FALLBACK.format(model=opts.model, resolution=resolution)
    why.append(line)
    if notice is not None:
        notice(line)
    return replace(opts, model="tiny", device="cpu", dtype=req.dtype or "fp32", resolution=None)


def _first_concept(cfg: TrainConfig | None, ot_dir: Path) -> Path | None:
    """The folder of the config's first concept that counts for training (relative to the checkout)."""
    for c in cfg.concepts if cfg is not None else ():
        if c.counts_for_training:
            p = Path(c.path).expanduser()
            return p if p.is_absolute() else ot_dir / p
    return None


def run_smoke(req: SmokeRequest, progress=None, notice=None) -> tuple[SmokeResult, list[str]]:
    """Run the smoke test the request asks for; returns the result and lines saying why this mode.

    `notice(line)` hears each reason as soon as it is known (before a long run, or an error).
    """
    req = check_request(req)
    ot_dir = _checkout(req)
    cfg, raw = _user_config(req, ot_dir)
    opts = _options(req, cfg)
    base_model = req.base_model or (cfg.base_model_name if cfg else None)
    why: list[str] = []
    reason = None if req.synthetic or req.tiny else _why_synthetic(ot_dir, base_model)
    if reason is not None:
        why.append(reason)
        if notice is not None:
            notice(reason)
    if reason is not None:
        opts = _fit_the_machine(req, opts, why, notice)
    if req.synthetic or req.tiny or reason is not None:
        return _synthetic(req, ot_dir, opts, why, progress or noop), why
    assert ot_dir is not None
    python = req.python or venv_python(ot_dir)
    source = _first_concept(cfg, ot_dir)
    result = run_onetrainer(ot_dir, python, opts, raw, base_model, source, progress or noop)
    return result, why


def result_json(result: SmokeResult, path: Path | None, why: list[str]) -> str:
    data = result.to_dict()
    data["saved_to"] = str(path) if path else None
    data["mode_reason"] = why
    return json.dumps(data, indent=1) + "\n"
