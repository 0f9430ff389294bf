"""`otdoctor vram`: the predicted peak of a config, the VRAM it has to fit in, and what to change.

The VRAM to fit in is `--free-gb` (GiB, as nvidia-smi's MiB / 1024), else the free memory of the
detected GPU named by `--gpu` (or the card of that name in vram.toml's [cards], empty), else the
free memory of the GPU the config's train_device lands on (NVML), else unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.errors import UserError
from otdoctor.onetrainer.checkout import find_checkout
from otdoctor.onetrainer.commands import train_line
from otdoctor.onetrainer.config import load_config, run_folder
from otdoctor.vram.advice import Advice, advise
from otdoctor.vram.model import Prediction, predict
from otdoctor.vram.settings import read_settings, table

GIB = 1024**3


@dataclass(frozen=True)
class VramReport:
    config_path: Path
    title: str
    prediction: Prediction
    free_bytes: int | None
    free_source: str  # where free_bytes comes from, for people
    advice: Advice | None  # only when it will not fit
    command: str | None = None  # the train.py line with the advice's values, to paste (commands.py)

    @property
    def fits(self) -> bool | None:
        return None if self.free_bytes is None else self.prediction.peak_bytes <= self.free_bytes


def _card(name: str) -> tuple[int, str]:
    cards = table()["cards"]
    hits = [k for k in cards if k.lower() in name.lower()] or [k for k in cards if name.lower() in k.lower()]
    if not hits:
        raise UserError(f"unknown --gpu {name!r}; known: {', '.join(cards)} (or pass --free-gb N)", exit_code=2)
    best = max(hits, key=len)
    return int(cards[best]), f"an empty {best} ({cards[best] / GIB:.0f} GiB, --gpu)"


def free_vram(probe: Any, train_device: str, gpu: str | None, free_gb: float | None) -> tuple[int | None, str]:
    """(free bytes, where that figure comes from)."""
    from otdoctor.gpu.reasoning import training_device, visible_devices

    if free_gb is not None:
        if not 0 < free_gb < 10_000:
            raise UserError(f"--free-gb must be a positive number of GiB, got {free_gb:g}", exit_code=2)
        return int(free_gb * GIB), f"--free-gb {free_gb:g}"
    info = probe.gpu()
    if gpu is not None:
        found = [d for d in visible_devices(info).devices if gpu.lower() in d.name.lower()]
        if found and found[0].memory_free_bytes is not None:
            return found[0].memory_free_bytes, f"free on GPU {found[0].index} ({found[0].name})"
        return _card(gpu)
    dev = training_device(info, train_device) if info.devices else None
    if dev is None or dev.memory_free_bytes is None:
        return None, "no NVIDIA GPU readable here: pass --gpu NAME or --free-gb N"
    return dev.memory_free_bytes, f"free on GPU {dev.index} ({dev.name})"


def vram_report(
    config: Path, ot_dir: Path | None, probe: Any, gpu: str | None = None, free_gb: float | None = None
) -> VramReport:
    from otdoctor.gpu.reasoning import plan_title

    cfg = load_config(config, run_folder(ot_dir, probe))
    settings = read_settings(cfg.raw)
    prediction = predict(settings)
    free, source = free_vram(probe, str(cfg.get("train_device") or "cuda"), gpu, free_gb)
    advice = advise(cfg.raw, prediction, free) if free is not None and prediction.peak_bytes > free else None
    values = [v for step in advice.steps for v in step.config_values] if advice else []
    command = _command(probe, ot_dir, config, values) if values else None
    return VramReport(config, plan_title(settings), prediction, free, source, advice, command)


def _command(probe: Any, ot_dir: Path | None, config: Path, values: list[str]) -> str:
    """The line that trains CONFIG with VALUES, in the checkout --ot-dir, $OT_DIR or the guide names."""
    checkout = find_checkout(probe, ot_dir).path
    return train_line(checkout, probe.env, probe.cwd, config, values)
