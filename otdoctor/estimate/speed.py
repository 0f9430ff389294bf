"""The training speed (it/s) of `otdoctor estimate`, and where it comes from.

In order: `--its`; else the newest smoke result for this GPU, model and batch size; else the rough
reference table for `--gpu NAME` or, when none is named, the GPU NVML detects. A figure measured or
listed at another resolution is scaled by the rule in gpu_speed.toml [resolution_scaling] (step
time grows with the latent pixels; the range's slow end with their square, for self-attention), within
`max_side_ratio`; beyond it the figure is not used and the note names the smoke run that measures it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.estimate import arithmetic as est
from otdoctor.estimate.inputs import EstimateRequest

if TYPE_CHECKING:
    from otdoctor.smoke.results import SmokeResult

_ROUGH_SPREAD = 0.15


def _table() -> dict[str, Any]:
    return load_table("gpu_speed.toml")


def scale_rate(rate: est.Rate, from_px: float, to_px: float) -> est.Rate | None:
    """RATE measured at FROM_PX, for a run at TO_PX; None beyond the table's max_side_ratio."""
    rule = _table()["resolution_scaling"]
    side = to_px / from_px
    if side == 1:
        return rate
    if not 1 / rule["max_side_ratio"] <= side <= rule["max_side_ratio"]:
        return None
    pixels = side * side
    slow_k, fast_k = (rule["slow_exponent"], rule["fast_exponent"])
    if pixels < 1:  # a smaller run: its slow end gains least, its fast end most
        slow_k, fast_k = fast_k, slow_k
    return est.Rate(
        rate.its / pixels ** rule["exponent"],
        (rate.low or rate.its) / pixels**slow_k,
        (rate.high or rate.its) / pixels**fast_k,
        f"{rate.source}; scaled from {from_px:.0f} to {to_px:.0f} px (step time x pixels^{rule['exponent']:g}, "
        f"range pixels^{rule['fast_exponent']:g}..^{rule['slow_exponent']:g})",
    )


def _measure_hint(model: str, px: float, batch: int) -> str:
    return f"otdoctor smoke --synthetic --model {model} --resolution {px:.0f} --batch-size {batch}"


def rough_rate(gpu: str, model: str, px: float, how: str = "") -> est.Rate | None:
    """The reference table's figure for GPU (a substring match, the longest wins), at PX."""
    table = _table()
    matches = [g for g in table.get("gpu", []) if g["name"].lower() in gpu.lower()]
    if not matches:
        return None
    g = max(matches, key=lambda g: len(g["name"]))
    key, at_px = {"sdxl": ("sdxl_its", 1024), "sd15": ("sd15_its", 512)}.get(model, (None, 0))
    if key is None:
        return None
    its = float(g[key])
    rate = est.Rate(
        its,
        its * (1 - _ROUGH_SPREAD),
        its * (1 + _ROUGH_SPREAD),
        f"ROUGH reference table, {g['name']}{how} ({g['source']}); ±{_ROUGH_SPREAD:.0%}",
    )
    return scale_rate(rate, at_px, px)


def _unknown_gpu(gpu: str) -> UserError:
    names = ", ".join(g["name"] for g in _table().get("gpu", []))
    return UserError(
        f"no rough reference speed for GPU {gpu!r}",
        exit_code=2,
        hint=f"known: {names}; or measure yours with `otdoctor smoke`, or pass --its",
    )


def _smoke_rate(found: Any, px: float, notes: list[str]) -> est.Rate | None:
    path, smoke, differs = found
    differs = [d for d in differs if not d.startswith("resolution")]
    if smoke.mode == "synthetic" and smoke.model != "tiny":
        notes.append("it/s from a synthetic run (UNet only): real OneTrainer with text encoder training is slower")
    rate = est.Rate(
        smoke.its or 0,
        smoke.its_low,
        smoke.its_high,
        f"MEASURED by the smoke {smoke.mode} run on {smoke.gpu}, {smoke.date} ({path.name})"
        + (f"; differs: {', '.join(differs)}" if differs else ""),
    )
    return scale_rate(rate, smoke.resolution, px)


def _from_smoke(req: EstimateRequest, gpu: str | None, model: str, px: float, batch: int, notes: list[str]) -> Any:
    """(rate, smoke result) from the newest fitting smoke result, or (None, None) with a note why."""
    from otdoctor.smoke import results as smoke_results

    found = smoke_results.latest_for(gpu=gpu, model=model, resolution=round(px), batch_size=batch)
    if found is None:
        why = f"no smoke result for {model} in {smoke_results.results_dir()}"
    else:
        rate = _smoke_rate(found, px, notes)
        if rate is not None:
            return rate, found[1]
        why = (
            f"the newest smoke result for {model} is at {found[1].resolution} px, more than "
            f"{_table()['resolution_scaling']['max_side_ratio']:g}x from {px:.0f} px"
        )
    if req.from_smoke:
        raise UserError(why, exit_code=1, hint=f"measure it: {_measure_hint(model, px, batch)}; or pass --its X")
    if found is not None:
        notes.append(f"{why}: not used; measure it with `{_measure_hint(model, px, batch)}`")
    return None, None


def _rough(gpu: str | None, named: bool, model: str, px: float, batch: int, notes: list[str]) -> est.Rate | None:
    """The reference table's figure for GPU (named by --gpu, else detected), or a note why none."""
    if not gpu:
        return None
    rate = rough_rate(gpu, model, px, "" if named else f", detected: {gpu}")
    if rate is None and named and rough_rate(gpu, "sdxl", 1024) is None:
        raise _unknown_gpu(gpu)
    if rate is None:
        hint = _measure_hint(model, px, batch)
        notes.append(f"no rough reference speed for {gpu} ({model}, {px:.0f} px): measure it with `{hint}`")
    return rate


def speed(
    req: EstimateRequest, model: str, px: float, batch: int, notes: list[str]
) -> tuple[est.Rate | None, SmokeResult | None]:
    """The it/s for a run at PX pixels a side: --its, else a smoke result, else the rough table (for
    --gpu, or the GPU this machine has); and the smoke result it used."""
    from otdoctor.probe.nvml import gpu_name_and_driver

    given = est.Rate(req.its, None, None, "--its (given)") if req.its is not None else None
    if given is not None and not req.from_smoke:
        return given, None
    gpu = req.gpu if req.gpu is not None else gpu_name_and_driver()[0]
    rate, smoke = _from_smoke(req, gpu, model, px, batch, notes)
    rate = given or rate or _rough(gpu, req.gpu is not None, model, px, batch, notes)
    if rate is None or not math.isfinite(rate.its):
        notes.append("no it/s known: pass --its X, run `otdoctor smoke`, or --gpu NAME for a rough figure")
        return None, smoke
    return rate, smoke
