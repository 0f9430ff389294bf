"""`otdoctor smoke`: a short real training run that proves the machine trains and measures its speed.

Two modes:
- OneTrainer mode (`onetrainer_mode.py`) runs the checkout's own `scripts/train.py` from its venv
  with a temporary config (the user's, or the guide's SDXL settings) and `--config-value`
  overrides: a tiny dataset, one epoch, no sampling/backups/saves/tensorboard, workspace/cache/output
  in a temporary folder. It is stopped with SIGINT after the measured steps, like a user pressing Ctrl-C.
- Synthetic mode (`synthetic_mode.py`) runs `synthetic_train.py` (shipped beside this file) with any
  interpreter that has torch and diffusers: a UNet from `data/unet_configs.toml` with random weights.
otdoctor never imports torch itself. This module holds what both modes share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.data import load_table
from otdoctor.estimate.progress_bars import BarUpdate

SCRIPT = Path(__file__).resolve().parent / "synthetic_train.py"  # run by the user's interpreter, never imported
DTYPES = {"bf16": "BFLOAT_16", "fp16": "FLOAT_16", "fp32": "FLOAT_32"}
MODEL_TYPES = {"sdxl": "STABLE_DIFFUSION_XL_10_BASE", "sd15": "STABLE_DIFFUSION_15"}


def unet_models() -> dict[str, Any]:
    """The UNet architectures of `data/unet_configs.toml` (shared: do not modify)."""
    return load_table("unet_configs.toml")


def model_key_for(model_type: str) -> str:
    return "sdxl" if "XL" in model_type.upper() else "sd15"


@dataclass
class SmokeOptions:
    model: str = "sdxl"
    resolution: int | None = None
    batch_size: int = 1
    dtype: str = "bf16"
    steps: int = 20
    warmup: int = 3
    gradient_checkpointing: bool = True
    fused_back_pass: bool = False
    keep: bool = False
    device: str = "auto"
    timeout_s: float = 3600.0
    overrides: list[str] = field(default_factory=list)  # extra --config-value KEY=VALUE
    own_adafactor: bool = False
    save_every: int = 0  # synthetic: periodic saves (the accuracy benchmark)
    measure_save: bool = True


Progress = Callable[[str, "BarUpdate | None"], None]


def noop(_msg: str, _bar: BarUpdate | None = None) -> None:
    pass


def explain_failure(output: str) -> str | None:
    """One line for the user: a known problem from `otdoctor explain`, else the last error line."""
    from otdoctor.explain.known_problems import explain_text, last_error_line

    matches = explain_text(output)
    if matches:
        m = matches[-1]
        p = m.problem
        cmd = f" ({'; '.join(p.commands)})" if p.commands else ""
        return f"{p.title}: {m.evidence} -> {p.fix}{cmd}"
    line = last_error_line(output)
    if line:
        return line
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def short_dtype(value: Any) -> str | None:
    for short, long in DTYPES.items():
        if value == long:
            return short
    return None
