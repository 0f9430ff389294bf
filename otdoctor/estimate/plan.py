"""`otdoctor estimate`: gathers the inputs (flags, config, image folders, smoke results, tables) for
the arithmetic in `otdoctor.estimate.arithmetic`, and says where every number came from.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from otdoctor.errors import UserError
from otdoctor.estimate import arithmetic as est
from otdoctor.estimate import sources
from otdoctor.estimate.inputs import (
    EstimateRequest,
    check_request,
    check_resolution,
    concepts_from_config,
    read_log,
    schedule,
    start_time,
)
from otdoctor.estimate.speed import speed

if TYPE_CHECKING:
    from otdoctor.onetrainer.config import TrainConfig
    from otdoctor.smoke.results import SmokeResult

T = TypeVar("T")

__all__ = [
    "EstimateOutput",
    "EstimateRequest",
    "LogOutput",
    "build",
    "final_overhead_s",
    "from_log",
    "predict_from_log",
    "start_time",
]


@dataclass
class EstimateOutput:
    plan: est.StepPlan
    time: est.TimeEstimate
    inputs: est.TimeInputs
    balancing: est.BalancingAdvice | None
    model: str
    start: _dt.datetime
    finish: _dt.datetime | None
    finish_low: _dt.datetime | None
    finish_high: _dt.datetime | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        p, t = self.plan, self.time
        out: dict[str, Any] = {
            "schema": 1,
            "model": self.model,
            "steps": _steps_dict(p),
            "terms": [
                {
                    "name": tm.name,
                    "count": tm.count,
                    "each_s": tm.each_s,
                    "seconds": tm.seconds,
                    "low_s": tm.low_s,
                    "high_s": tm.high_s,
                    "source": tm.source,
                }
                for tm in t.terms
            ],
            "total_s": t.total_s,
            "low_s": t.low_s,
            "high_s": t.high_s,
            "steps_s": t.steps_s,
            "its": self.inputs.rate.its if self.inputs.rate else None,
            "its_source": self.inputs.rate.source if self.inputs.rate else None,
            "start": self.start.isoformat(timespec="seconds"),
            "finish": _iso(self.finish),
            "finish_low": _iso(self.finish_low),
            "finish_high": _iso(self.finish_high),
            "notes": self.notes + list(p.notes),
        }
        if self.balancing is not None:
            b = self.balancing
            out["balancing"] = {
                "wanted": b.wanted,
                "images": b.n_images,
                "repeats_value": b.value_text,
                "naive_value": b.naive_text,
                "naive_samples": b.naive_count,
                "samples_alternative": b.samples_value,
            }
        return out


def _iso(t: _dt.datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


def _steps_dict(p: est.StepPlan) -> dict[str, Any]:
    return {
        "per_epoch": p.steps_per_epoch,
        "total": p.total_steps,
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "samples_per_epoch": p.samples_per_epoch,
        "exact": p.exact,
        "varies_per_epoch": p.varies_per_epoch,
        "dropped_per_epoch": p.dropped_per_epoch,
        "concepts": [{"name": n, "samples": s, "left_out": w} for n, s, w in p.per_concept],
        "buckets": [{"height": hw[0], "width": hw[1], "samples": k} for hw, k in p.buckets],
    }


# What the run is ---------------------------------------------------------------------------------
def _pick(given: T | None, cfg: TrainConfig | None, read: Callable[[TrainConfig], T], default: T) -> T:
    """An option when given, else what the config says, else the default."""
    if given is not None:
        return given
    return read(cfg) if cfg is not None else default


def _load_config(config: Path | None, ot_dir: Path | None) -> TrainConfig | None:
    if config is None:
        return None
    from otdoctor.onetrainer.config import load_config, unusable

    cfg = load_config(config, ot_dir)
    if cfg.problems:
        raise UserError(unusable(cfg), exit_code=2, hint="correct it in the config, or export it again from the UI")
    return cfg


def _model_key(model: str | None, cfg: TrainConfig | None) -> str:
    return model or (("sdxl" if cfg.is_sdxl else "sd15") if cfg is not None else "sdxl")


def _epochs_and_batch(req: EstimateRequest, cfg: TrainConfig | None) -> tuple[int, int]:
    """The options, else the config's (already checked against the same limits by config_keys)."""
    epochs: int | None = _pick(req.epochs, cfg, lambda c: c.int_value("epochs"), None)
    if epochs is None:
        raise UserError("how many epochs? pass --epochs N (or --config)", exit_code=2)
    batch = _pick(req.batch_size, cfg, lambda c: c.int_value("batch_size"), 1)
    return epochs, batch


def _resolution(req: EstimateRequest, cfg: TrainConfig | None, mtable: dict[str, Any]) -> str:
    if req.resolution:
        return req.resolution
    if cfg is None:
        return str(mtable["default_resolution"])
    resolution = str(cfg.get("resolution"))
    check_resolution(resolution, f"config {req.config}: resolution")
    return resolution


def _concepts(
    req: EstimateRequest, cfg: TrainConfig | None, notes: list[str]
) -> tuple[list[est.ConceptPlan], est.BalancingAdvice | None]:
    """The concepts of the config, or --images with --reg balanced to --want samples."""
    if cfg is not None and req.images is None:
        concepts = concepts_from_config(cfg, req.ot_dir, notes)
        if not concepts:
            raise UserError(
                f"config {req.config} has no concepts",
                exit_code=2,
                hint="check concept_file_name, or pass --images N [--reg N]",
            )
        return concepts, None
    if req.images is None:
        raise UserError("how many training images? pass --images N (or --config)", exit_code=2)
    concepts = [est.ConceptPlan("training images", req.images, 1.0, "REPEATS")]
    if not req.reg:
        return concepts, None
    want = req.want if req.want is not None else req.images
    advice = est.balancing_for(want, req.reg)
    strategy = req.strategy.upper()
    if req.balancing is not None:
        balancing = req.balancing
    else:
        balancing = float(advice.value_text) if strategy == "REPEATS" else float(want)
    concepts.append(est.ConceptPlan("regularisation", req.reg, balancing, strategy))
    return concepts, advice


# The estimate ------------------------------------------------------------------------------------
def _time_inputs(
    req: EstimateRequest,
    cfg: TrainConfig | None,
    mtable: dict[str, Any],
    plan: est.StepPlan,
    concepts: list[est.ConceptPlan],
    speed: tuple[est.Rate | None, SmokeResult | None],
    notes: list[str],
) -> est.TimeInputs:
    rate, smoke = speed
    load = sources.model_load(req, smoke, mtable)
    caching = sources.caching_rate(req, smoke, mtable)
    latent_caching = _pick(req.latent_caching, cfg, lambda c: bool(c.get("latent_caching")), True)
    if not latent_caching:
        notes.append("latent caching off: the VAE runs every step, which a smoke run with caching does not measure")
    writes = sources.writes(req, cfg, smoke, mtable, notes)
    table = sources.gpu_table()
    return est.TimeInputs(
        plan=plan,
        rate=rate,
        model_load_s=float(load.value or 0),
        model_load_source=load.source,
        cache_items=est.cache_items(concepts, plan.epochs) if latent_caching else 0,
        caching_items_per_s=caching.value,
        caching_source=caching.source,
        sampling=schedule(req.sample_every, req.sample_unit, cfg, "sample_after", "sample_after_unit", (10, "MINUTE")),
        saves=schedule(req.save_every, req.save_unit, cfg, "save_every", "save_every_unit", (0, "NEVER")),
        save_bytes=writes.save_bytes,
        backups=schedule(req.backup_every, req.backup_unit, cfg, "backup_after", "backup_after_unit", (30, "MINUTE")),
        backup_bytes=writes.backup_bytes,
        backup_before_save=_pick(
            req.backup_before_save, cfg, lambda c: bool(c.raw.get("backup_before_save", True)), True
        ),
        write_bytes_per_s=writes.bytes_per_s,
        write_source=writes.source,
        sampling_speedup=float(table["sampling_speedup"]),
        sample_steps=int(table["sample_steps"]),
        sample_overhead_s=float(table["sample_overhead_s"]),
        **sources.overhead_fields(req, smoke, writes.source),
    )


def _side_px(resolution: str, mtable: dict[str, Any]) -> float:
    """The side of a square with the run's pixels: the first target, or a fixed WxH's geometric mean."""
    targets, fixed = est.parse_resolution(resolution)
    if targets:
        return float(targets[0])
    if fixed:
        return math.sqrt(fixed[0] * fixed[1])
    return float(mtable["default_resolution"])


def _check_duration(time_est: est.TimeEstimate, plan: est.StepPlan) -> None:
    """A run longer than `run_years` is a typo in a count or a speed: say so instead of a date."""
    years = float(sources.gpu_table()["limits"]["run_years"])
    longest = max((s for s in (time_est.total_s, time_est.high_s) if s is not None), default=0.0)
    year_s = 365.25 * 86400
    if not math.isfinite(longest) or longest > years * year_s:
        took = f"{longest / year_s:,.0f} years" if math.isfinite(longest) else "forever"
        raise UserError(
            f"this run would take {took} ({plan.total_steps:,} steps), more than {years:g} years",
            exit_code=2,
            hint="check --epochs, --images, --batch-size and --its (or the config's epochs and balancing)",
        )


def build(req: EstimateRequest) -> EstimateOutput:
    check_request(req)
    cfg = _load_config(req.config, req.ot_dir)
    notes: list[str] = list(cfg.warnings) if cfg is not None else []
    model = _model_key(req.model, cfg)
    models = sources.unet_models()
    if model not in models:
        raise UserError(f"unknown --model {model!r}; choose sdxl or sd15", exit_code=2)
    mtable = models[model]
    epochs, batch = _epochs_and_batch(req, cfg)
    resolution = _resolution(req, cfg, mtable)
    bucketing = bool(cfg.get("aspect_ratio_bucketing")) if cfg is not None else True
    concepts, advice = _concepts(req, cfg, notes)
    quant = est.BUCKET_QUANTIZATION.get(model, 64)
    try:
        plan = est.plan_steps(concepts, epochs, batch, resolution, bucketing, quant)
    except ValueError as exc:
        raise UserError(str(exc), exit_code=2) from None
    rate_and_smoke = speed(req, model, _side_px(resolution, mtable), batch, notes)
    inputs = _time_inputs(req, cfg, mtable, plan, concepts, rate_and_smoke, notes)
    time_est = est.estimate_time(inputs)
    _check_duration(time_est, plan)
    start = req.start or _dt.datetime.now().astimezone()

    def at(s: float | None) -> _dt.datetime | None:
        return None if s is None or not math.isfinite(s) else start + _dt.timedelta(seconds=s)

    return EstimateOutput(
        plan,
        time_est,
        inputs,
        advice,
        model,
        start,
        at(time_est.total_s),
        at(time_est.low_s),
        at(time_est.high_s),
        notes,
    )


def final_overhead_s(config: Path | None, ot_dir: Path | None, model: str | None) -> tuple[float, str]:
    """Seconds of the end-of-run save (and the backup before it, OneTrainer's default): not in any bar."""
    cfg = _load_config(config, ot_dir)
    model = _model_key(model, cfg)
    models = sources.unet_models()
    params = int((models.get(model) or models["sdxl"])["checkpoint_parameters"])
    out_dtype = str(cfg.get("output_dtype")) if cfg is not None else "BFLOAT_16"
    total = sources.save_bytes(params, out_dtype)
    with_backup = cfg is None or bool(cfg.raw.get("backup_before_save", True))
    if with_backup:
        total += sources.backup_bytes(params)
    write_bps = float(sources.gpu_table()["disk_write_bytes_per_s"])
    what = "final save and backup" if with_backup else "final save"
    return total / write_bps, f"{what} of {model} at a rough {write_bps / 1e6:.0f} MB/s"


# --from-log ---------------------------------------------------------------------------------------
@dataclass
class LogOutput:
    prediction: est.LogPrediction
    last_epoch_line: str | None
    last_step_line: str | None
    now: _dt.datetime
    finish: _dt.datetime | None
    final_save_s: float | None

    def to_dict(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "schema": 1,
            "epoch": p.epoch,
            "epochs": p.epochs,
            "step": p.step,
            "steps_in_epoch": p.steps_in_epoch,
            "remaining_s": p.remaining_s,
            "basis": p.basis,
            "epoch_s": p.epoch_s,
            "step_its": p.step_its,
            "loss": p.loss,
            "final_save_s": self.final_save_s,
            "finish": _iso(self.finish),
            "last_epoch_line": self.last_epoch_line,
            "last_step_line": self.last_step_line,
        }


def _believable(pred: est.LogPrediction) -> est.LogPrediction:
    """PRED, or without a remaining time when the bars give more than `run_years` (a garbled or
    hand-made bar such as `3/99999999999999999999`): no finish date is better than a wrong one."""
    years = float(sources.gpu_table()["limits"]["run_years"])
    remaining = pred.remaining_s
    if remaining is not None and remaining < 0:  # `5/3`: tqdm draws a count past its total
        return dataclasses.replace(pred, remaining_s=0.0, basis=f"{pred.basis}; the bar is past its total")
    if remaining is None or remaining <= years * 365.25 * 86400:
        return pred
    return dataclasses.replace(
        pred,
        remaining_s=None,
        basis=f"the bars give {remaining / (365.25 * 86400):.3g} years: more than {years:g}, not a real run",
    )


def from_log(text: str, now: _dt.datetime | None = None, final_save_s: float | None = None) -> LogOutput:
    from otdoctor.estimate.progress_bars import BarUpdate, parse_text

    epoch_bar = step_bar = None
    for ev in parse_text(text):
        if isinstance(ev, BarUpdate):
            if ev.desc == "epoch":
                epoch_bar = ev
            elif ev.desc == "step":
                step_bar = ev
    if epoch_bar is None and step_bar is None:
        raise UserError(
            "no OneTrainer progress bar (epoch: or step:) found in the log",
            exit_code=1,
            hint="pass the terminal output of a running training, e.g. `... 2>&1 | tee train.log`",
        )
    pred = _believable(est.predict_from_bars(epoch_bar, step_bar))
    now = now or _dt.datetime.now().astimezone()
    remaining = pred.remaining_s
    if remaining is not None and final_save_s:
        remaining += final_save_s
    finish = None if remaining is None else now + _dt.timedelta(seconds=remaining)
    return LogOutput(
        pred, epoch_bar.raw if epoch_bar else None, step_bar.raw if step_bar else None, now, finish, final_save_s
    )


def predict_from_log(
    source: str, config: Path | None, ot_dir: Path | None, model: str | None, start: str | None
) -> LogOutput:
    """--from-log: when a running OneTrainer (its output in the file `source`, or `-` for stdin)
    finishes, counting the final save its bars do not show; `start` (--start) stands for now."""
    text = read_log(source)
    final_s, _ = final_overhead_s(config, ot_dir, model)
    return from_log(text, now=start_time(start), final_save_s=final_s)
