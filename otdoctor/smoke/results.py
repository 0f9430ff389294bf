"""Smoke results: what was measured, saved as JSON in otdoctor's cache, found again by `estimate`.

One file per run in `<cache>/smoke/`, named by date; `latest_for()` picks the newest result for a
GPU and settings (model, resolution, batch size, dtype), so `otdoctor estimate` can say where its
it/s came from.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.probe.files import cache_dir, read_json, write_json

SCHEMA = 1


@dataclass
class SmokeResult:
    mode: str  # "synthetic" or "onetrainer"
    model: str  # sdxl | sd15 | tiny
    resolution: int
    batch_size: int
    dtype: str
    gpu: str  # device name ("CPU" when none)
    steps: int = 0
    warmup_steps: int = 0
    its: float | None = None
    its_low: float | None = None
    its_high: float | None = None
    load_s: float | None = None
    caching_images_per_s: float | None = None
    peak_vram_bytes: int | None = None
    peak_vram_source: str = "unavailable"
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    driver: str | None = None
    torch: str | None = None
    diffusers: str | None = None
    optimizer: str | None = None
    gradient_checkpointing: bool | None = None
    fused_back_pass: bool | None = None
    parameters: int | None = None
    loss_first: float | None = None
    loss_last: float | None = None
    loss_finite: bool | None = None
    save_bytes: int | None = None
    save_s: float | None = None
    # OneTrainer's own overheads as the run showed them (time beyond a steady step): one sampling
    # pass, one backup, one epoch boundary (smoke.onetrainer_phases).
    sample_s: float | None = None
    backup_s: float | None = None
    epoch_s: float | None = None
    final_s: float | None = None  # the last step to the process's end: the final save, then the exit
    wall_s: float | None = None
    ok: bool = True
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    date: str = ""
    schema: int = SCHEMA

    def key(self) -> tuple[str, str, int, int, str]:
        return (self.gpu.lower(), self.model, self.resolution, self.batch_size, self.dtype)

    @property
    def write_bytes_per_s(self) -> float | None:
        if self.save_bytes and self.save_s and self.save_s > 0:
            return self.save_bytes / self.save_s
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmokeResult:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def from_whole_run(events: list[Any], end: float, settings: dict[str, Any], warmup: int = 1) -> SmokeResult:
    """What a OneTrainer-mode smoke reports of a run it watched to its end: EVENTS as
    `(seconds, bar update or line)`, in wall or any other clock, END the process's end in that clock.
    SETTINGS: the model, resolution, batch size, dtype and GPU fields; the first WARMUP steps are left out."""
    from otdoctor.estimate.progress_bars import BarUpdate
    from otdoctor.smoke.meter import Meter
    from otdoctor.smoke.onetrainer_phases import overheads

    meter = Meter(0.0)
    for _, ev in events:
        if isinstance(ev, BarUpdate):
            meter.add(ev)
    found = overheads(events, end, warmup)
    return SmokeResult(
        mode="onetrainer",
        **settings,
        steps=found.steady_steps,
        its=1 / found.step_s if found.step_s else None,
        load_s=meter.load_s,
        caching_images_per_s=meter.caching_images_per_s(),
        sample_s=found.sample_s,
        backup_s=found.backup_s,
        epoch_s=found.epoch_s,
        save_s=found.save_s if found.save_s is not None else found.final_s,
        final_s=found.final_s,
        wall_s=end,
    )


def results_dir() -> Path:
    return cache_dir() / "smoke"


def save(result: SmokeResult) -> Path:
    now = _dt.datetime.now(_dt.timezone.utc)
    if not result.date:
        result.date = now.isoformat(timespec="seconds")
    slug = re.sub(r"[^a-z0-9]+", "-", result.gpu.lower()).strip("-") or "gpu"
    path = results_dir() / f"{now.strftime('%Y%m%dT%H%M%S%f')}-{result.mode}-{result.model}-{slug}.json"
    write_json(path, result.to_dict())
    return path


def load_all() -> list[tuple[Path, SmokeResult]]:
    out: list[tuple[Path, SmokeResult]] = []
    folder = results_dir()
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        data = read_json(path)
        if isinstance(data, dict) and data.get("schema") == SCHEMA:
            try:
                out.append((path, SmokeResult.from_dict(data)))
            except TypeError:
                continue
    return out


def _same_gpu(wanted: str | None, gpu: str) -> bool:
    """Does `wanted` name `gpu`? "RTX 4090" picks "NVIDIA GeForce RTX 4090": people type the short name."""
    return not wanted or wanted in gpu.lower() or gpu.lower() in wanted


def latest_for(
    gpu: str | None = None,
    model: str | None = None,
    resolution: int | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
) -> tuple[Path, SmokeResult, list[str]] | None:
    """The newest successful result matching what is given; the list says which settings differ."""
    wanted_gpu = gpu.lower() if gpu else None
    settings = {"resolution": resolution, "batch_size": batch_size, "dtype": dtype}
    best: tuple[int, Path, SmokeResult, list[str]] | None = None
    for path, r in load_all():
        if not r.ok or not r.its or not _same_gpu(wanted_gpu, r.gpu) or (model and r.model != model):
            continue
        differs = [
            f"{k} {getattr(r, k)} (you: {v})" for k, v in settings.items() if v is not None and getattr(r, k) != v
        ]
        score = -len(differs)
        if best is None or score >= best[0]:  # later files win ties: sorted by date
            best = (score, path, r, differs)
    if best is None:
        return None
    return best[1], best[2], best[3]
