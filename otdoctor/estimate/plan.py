"""`otdoctor estimate`: gathers the inputs (flags, config, image folders, smoke results, tables) for
the arithmetic in `otdoctor.estimate.arithmetic`, and says where every number came from.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.data import data_file
from otdoctor.dataset.scan import list_concept
from otdoctor.errors import UserError
from otdoctor.estimate import arithmetic as est

DTYPE_BYTES = {"FLOAT_32": 4, "FLOAT_16": 2, "BFLOAT_16": 2, "FLOAT_8": 1, "INT_8": 1, "NFLOAT_4": 0.5}


def _toml(name: str) -> dict[str, Any]:
    from otdoctor.smoke.run import _toml as load

    return load(data_file(name))


def image_sizes(paths: list[Path]) -> tuple[tuple[int, int], ...] | None:
    """(width, height) of each image from its header (Pillow opens lazily: no pixel is decoded)."""
    from PIL import Image

    sizes = []
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.append((int(im.size[0]), int(im.size[1])))
        except Exception:  # an unreadable image: OneTrainer skips or fails on it; the sizes are unknown
            return None
    return tuple(sizes)


# GPU reference table ----------------------------------------------------------------------------
def gpu_table() -> dict[str, Any]:
    return _toml("gpu_speed.toml")


def rough_rate(gpu: str, model: str) -> est.Rate:
    table = gpu_table()
    matches = [g for g in table.get("gpu", []) if g["name"].lower() in gpu.lower()]
    if not matches:
        names = ", ".join(g["name"] for g in table.get("gpu", []))
        raise UserError(
            f"no rough reference speed for GPU {gpu!r}",
            exit_code=2,
            hint=f"known: {names}; or measure yours with `otdoctor smoke`, or pass --its",
        )
    g = max(matches, key=lambda g: len(g["name"]))
    its = float(g["sdxl_its"] if model == "sdxl" else g["sd15_its"])
    return est.Rate(its, its * 0.85, its * 1.15, f"ROUGH reference table, {g['name']} ({g['source']}); ±15%")


# Inputs ------------------------------------------------------------------------------------------
@dataclass
class EstimateRequest:
    images: int | None = None
    reg: int | None = None
    balancing: float | None = None
    want: int | None = None
    strategy: str = "REPEATS"
    epochs: int | None = None
    batch_size: int | None = None
    its: float | None = None
    from_smoke: bool = False
    gpu: str | None = None
    config: Path | None = None
    ot_dir: Path | None = None
    model: str | None = None
    resolution: str | None = None
    sample_every: float | None = None
    sample_unit: str | None = None
    save_every: float | None = None
    save_unit: str | None = None
    backup_every: float | None = None
    backup_unit: str | None = None
    load_s: float | None = None
    caching_rate: float | None = None
    write_mbps: float | None = None
    sample_s: float | None = None
    save_gb: float | None = None
    backup_before_save: bool | None = None
    latent_caching: bool | None = None
    start: _dt.datetime | None = None


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
            "steps": {
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
            },
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
            "finish": self.finish.isoformat(timespec="seconds") if self.finish else None,
            "finish_low": self.finish_low.isoformat(timespec="seconds") if self.finish_low else None,
            "finish_high": self.finish_high.isoformat(timespec="seconds") if self.finish_high else None,
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


def _concepts_from_config(cfg: Any, ot_dir: Path | None, notes: list[str]) -> list[est.ConceptPlan]:
    plans = []
    for c in cfg.concepts:
        raw = c.raw
        path = Path(str(raw.get("path", ""))).expanduser()
        if not path.is_absolute():
            base = ot_dir if ot_dir is not None else (cfg.path.parent if cfg.path else Path.cwd())
            path = base / path
        enabled = bool(raw.get("enabled", True))
        ctype = str(raw.get("type", "STANDARD"))
        # The same listing the dataset checks use: OneTrainer's image extensions, masks and captions left out.
        images = list(list_concept(path, bool(raw.get("include_subdirectories", False))).images) if enabled else []
        if enabled and ctype != "VALIDATION" and not path.is_dir():
            notes.append(f"concept {c.name}: folder {path} not found; counted as 0 images")
        sizes = image_sizes(images) if images and enabled and ctype != "VALIDATION" else ()
        plans.append(
            est.ConceptPlan(
                name=c.name,
                n_images=len(images),
                balancing=_num(float, raw.get("balancing", 1.0), f"concept {c.name}: balancing"),
                strategy=str(raw.get("balancing_strategy", "REPEATS")),
                enabled=enabled,
                type=ctype,
                image_variations=_num(int, raw.get("image_variations", 1) or 1, f"concept {c.name}: image_variations"),
                image_sizes=sizes,
            )
        )
    return plans


def _schedule(
    every: float | None, unit: str | None, cfg: Any, key: str, unit_key: str, default: tuple[float, str]
) -> est.Schedule:
    if every is not None or unit is not None:
        return est.Schedule(every if every is not None else default[0], (unit or default[1]).upper())
    if cfg is not None:
        raw = cfg.raw
        if key in raw or unit_key in raw:
            skip_key = key.replace("_after", "").replace("_every", "") + "_skip_first"
            return est.Schedule(
                _num(float, raw.get(key, default[0]) or 0, f"config {key}"),
                str(raw.get(unit_key, default[1])).upper(),
                _num(int, raw.get(skip_key, 0) or 0, f"config {skip_key}"),
            )
    return est.Schedule(*default)


_UNITS = ("NEVER", "EPOCH", "STEP", "SECOND", "MINUTE", "HOUR")


def _num(kind: type, value: Any, where: str) -> Any:
    """int/float of a config value; a hand-edited "ten" is a one-line error, not a crash."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(
            f"{where} is {value!r}, not a number",
            exit_code=2,
            hint="correct it in the config, or export the config again from the UI",
        ) from None


def _check_request(req: EstimateRequest) -> None:
    """Refuse impossible numbers up front: one line naming the option, not a crash or a negative time."""

    def bad(msg: str) -> None:
        raise UserError(msg, exit_code=2)

    for name, value in (("--images", req.images), ("--reg", req.reg), ("--want", req.want)):
        if value is not None and value < 0:
            bad(f"{name} must be 0 or more, got {value:g}")
    if req.images is not None and req.images == 0:
        bad("--images must be at least 1: a run needs training images")
    if req.epochs is not None and req.epochs < 0:
        bad(f"--epochs must be 0 or more, got {req.epochs}")
    if req.batch_size is not None and req.batch_size < 1:
        bad(f"--batch-size must be 1 or more, got {req.batch_size}")
    if req.strategy.upper() not in ("REPEATS", "SAMPLES"):
        bad(f"--strategy is repeats or samples, got {req.strategy!r}")
    if req.its is not None and not (math.isfinite(req.its) and req.its > 0):
        bad(f"--its must be a positive number of steps per second, got {req.its:g}")
    for name, value in (("--caching-rate", req.caching_rate), ("--write-mbps", req.write_mbps)):
        if value is not None and not (math.isfinite(value) and value > 0):
            bad(f"{name} must be a positive number, got {value:g}")
    for name, value in (
        ("--balancing", req.balancing),
        ("--sample-every", req.sample_every),
        ("--save-every", req.save_every),
        ("--backup-every", req.backup_every),
        ("--load-s", req.load_s),
        ("--sample-s", req.sample_s),
        ("--save-gb", req.save_gb),
    ):
        if value is not None and not (math.isfinite(value) and value >= 0):
            bad(f"{name} must be 0 or more, got {value:g}")
    for name, unit in (
        ("--sample-unit", req.sample_unit),
        ("--save-unit", req.save_unit),
        ("--backup-unit", req.backup_unit),
    ):
        if unit is not None and unit.upper() not in _UNITS:
            bad(f"{name} is one of {', '.join(_UNITS)}, got {unit!r}")
    if req.resolution is not None:
        _check_resolution(req.resolution, "--resolution")


def _check_resolution(text: str, where: str) -> None:
    try:
        targets, fixed = est.parse_resolution(text)
    except ValueError:
        targets, fixed = [], None
    if not all(v > 0 for v in [*targets, *(fixed or ())]) or not (targets or fixed):
        raise UserError(f"{where} wants pixels like 1024, 768,1024 or 832x1216, got {text!r}", exit_code=2)


def build(req: EstimateRequest) -> EstimateOutput:
    from otdoctor.smoke import results as smoke_results
    from otdoctor.smoke.run import unet_models

    _check_request(req)
    notes: list[str] = []
    cfg = None
    if req.config is not None:
        from otdoctor.onetrainer.config import load_config

        cfg = load_config(req.config, req.ot_dir)
        notes += list(cfg.warnings)

    model = req.model or (("sdxl" if cfg.is_sdxl else "sd15") if cfg is not None else "sdxl")
    models = unet_models()
    if model not in models:
        raise UserError(f"unknown --model {model!r}; choose sdxl or sd15", exit_code=2)
    mtable = models[model]
    epochs = (
        req.epochs
        if req.epochs is not None
        else (_num(int, cfg.get("epochs"), f"config {req.config}: epochs") if cfg is not None else None)
    )
    if epochs is None:
        raise UserError("how many epochs? pass --epochs N (or --config)", exit_code=2)
    batch = (
        req.batch_size
        if req.batch_size is not None
        else (_num(int, cfg.get("batch_size"), f"config {req.config}: batch_size") if cfg is not None else 1)
    )
    if batch < 1 or epochs < 0:  # only a config gets here: options were checked up front
        raise UserError(
            f"config {req.config}: batch_size must be 1 or more and epochs 0 or more (found {batch} and {epochs})",
            exit_code=2,
        )
    resolution = req.resolution or (
        str(cfg.get("resolution")) if cfg is not None else str(mtable["default_resolution"])
    )
    if req.resolution is None and cfg is not None:
        _check_resolution(resolution, f"config {req.config}: resolution")
    bucketing = bool(cfg.get("aspect_ratio_bucketing")) if cfg is not None else True

    advice = None
    concepts: list[est.ConceptPlan] = []
    if cfg is not None and req.images is None:
        concepts = _concepts_from_config(cfg, req.ot_dir, notes)
        if not concepts:
            raise UserError(
                f"config {req.config} has no concepts",
                exit_code=2,
                hint="check concept_file_name, or pass --images N [--reg N]",
            )
    else:
        if req.images is None or req.images < 0:
            raise UserError("how many training images? pass --images N (or --config)", exit_code=2)
        concepts.append(est.ConceptPlan("training images", req.images, 1.0, "REPEATS"))
        if req.reg:
            want = req.want if req.want is not None else req.images
            advice = est.balancing_for(want, req.reg)
            strategy = req.strategy.upper()
            if strategy not in ("REPEATS", "SAMPLES"):
                raise UserError("--strategy is repeats or samples", exit_code=2)
            if req.balancing is not None:
                balancing = req.balancing
            else:
                balancing = float(advice.value_text) if strategy == "REPEATS" else float(want)
            concepts.append(est.ConceptPlan("regularisation", req.reg, balancing, strategy))

    quant = est.BUCKET_QUANTIZATION.get(model, 64)
    try:
        plan = est.plan_steps(concepts, epochs, batch, resolution, bucketing, quant)
    except ValueError as exc:
        raise UserError(str(exc), exit_code=2) from None

    # Where the speed comes from: --its, else a smoke result, else the rough table.
    rate: est.Rate | None = None
    smoke = None
    res_px = est.parse_resolution(resolution)[0][:1] or [int(mtable["default_resolution"])]
    if req.its is not None:
        if req.its <= 0:
            raise UserError("--its must be positive", exit_code=2)
        rate = est.Rate(req.its, None, None, "--its (given)")
    if rate is None or req.from_smoke:
        gpu_name = req.gpu
        if gpu_name is None:  # this machine's GPU; on a machine without one, any result of this model
            from otdoctor.smoke.run import _gpu_facts

            gpu_name = _gpu_facts()[0]
        found = smoke_results.latest_for(gpu=gpu_name, model=model, resolution=res_px[0], batch_size=batch)
        if found is None and req.from_smoke:
            raise UserError(
                f"no smoke result for {model} in {smoke_results.results_dir()}",
                exit_code=1,
                hint="run `otdoctor smoke` first, or pass --its X / --gpu NAME",
            )
        if found is not None and rate is None:
            path, smoke, differs = found
            rate = est.Rate(
                smoke.its or 0,
                smoke.its_low,
                smoke.its_high,
                f"smoke {smoke.mode} run on {smoke.gpu}, {smoke.date} ({path.name})"
                + (f"; differs: {', '.join(differs)}" if differs else ""),
            )
            if smoke.mode == "synthetic" and smoke.model != "tiny":
                notes.append(
                    "it/s from a synthetic run (UNet only): real OneTrainer with text encoder training is slower"
                )
    if rate is None and req.gpu:
        rate = rough_rate(req.gpu, model)
    if rate is None:
        notes.append("no it/s known: pass --its X, run `otdoctor smoke`, or --gpu NAME for a rough figure")

    table = gpu_table()
    load_s, load_src = (
        (req.load_s, "--load-s")
        if req.load_s is not None
        else (
            (smoke.load_s, "smoke run")
            if smoke is not None and smoke.load_s
            else (float(mtable["model_load_s_rough"]), "rough default")
        )
    )
    if smoke is not None and smoke.caching_images_per_s and req.caching_rate is None:
        cache_rate, cache_src = smoke.caching_images_per_s, "smoke run"
    elif req.caching_rate is not None:
        cache_rate, cache_src = req.caching_rate, "--caching-rate"
    else:
        cache_rate, cache_src = float(mtable["caching_images_per_s_rough"]), "rough default"
    latent_caching = (
        req.latent_caching
        if req.latent_caching is not None
        else (bool(cfg.get("latent_caching")) if cfg is not None else True)
    )
    if not latent_caching:
        notes.append("latent caching off: the VAE runs every step, which a smoke run with caching does not measure")

    write_src = "rough default (SATA SSD)"
    write_bps = float(table.get("disk_write_bytes_per_s", 400e6))
    if req.write_mbps is not None:
        write_bps, write_src = req.write_mbps * 1e6, "--write-mbps"
    elif smoke is not None and smoke.write_bytes_per_s and smoke.save_bytes and smoke.save_bytes > 50e6:
        write_bps, write_src = smoke.write_bytes_per_s, "smoke run's save"

    out_dtype = str(cfg.get("output_dtype")) if cfg is not None else "BFLOAT_16"
    params = int(mtable["checkpoint_parameters"])
    if req.save_gb is not None:
        save_bytes = int(req.save_gb * 1e9)
    elif smoke is not None and smoke.model == "tiny" and smoke.save_bytes:
        save_bytes = int(smoke.save_bytes)
        if smoke.save_s:
            write_bps, write_src = smoke.save_bytes / smoke.save_s, "smoke run's save"
    else:
        save_bytes = int(params * DTYPE_BYTES.get(out_dtype, 2))
    backup_bytes = int(params * 2 * 1.05)  # weights in the train dtype plus Adafactor's small state
    training_method = str(cfg.get("training_method")) if cfg is not None else "FINE_TUNE"
    if training_method == "LORA":
        save_bytes = backup_bytes = int(50e6)
        notes.append("LoRA: saves are small; estimated at 50 MB")

    sampling = _schedule(req.sample_every, req.sample_unit, cfg, "sample_after", "sample_after_unit", (10, "MINUTE"))
    saves = _schedule(req.save_every, req.save_unit, cfg, "save_every", "save_every_unit", (0, "NEVER"))
    backups = _schedule(req.backup_every, req.backup_unit, cfg, "backup_after", "backup_after_unit", (30, "MINUTE"))
    backup_before_save = (
        req.backup_before_save
        if req.backup_before_save is not None
        else (bool(cfg.raw.get("backup_before_save", True)) if cfg is not None else True)
    )
    inputs = est.TimeInputs(
        plan=plan,
        rate=rate,
        model_load_s=float(load_s or 0),
        model_load_source=load_src,
        cache_items=est.cache_items(concepts, epochs) if latent_caching else 0,
        caching_items_per_s=cache_rate,
        caching_source=cache_src,
        sampling=sampling,
        sample_s=req.sample_s,
        sample_source="--sample-s" if req.sample_s is not None else "rough: 20 steps at 2.5x the training rate + 2 s",
        saves=saves,
        save_bytes=save_bytes,
        backups=backups,
        backup_bytes=backup_bytes,
        backup_before_save=backup_before_save,
        write_bytes_per_s=write_bps,
        write_source=write_src,
        sampling_speedup=float(table.get("sampling_speedup", 2.5)),
        sample_steps=int(table.get("sample_steps", 20)),
        sample_overhead_s=float(table.get("sample_overhead_s", 2.0)),
    )
    time_est = est.estimate_time(inputs)
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
    from otdoctor.smoke.run import unet_models

    cfg = None
    if config is not None:
        from otdoctor.onetrainer.config import load_config

        cfg = load_config(config, ot_dir)
    model = model or (("sdxl" if cfg.is_sdxl else "sd15") if cfg is not None else "sdxl")
    mtable = unet_models().get(model) or unet_models()["sdxl"]
    params = int(mtable["checkpoint_parameters"])
    out_dtype = str(cfg.get("output_dtype")) if cfg is not None else "BFLOAT_16"
    total = params * DTYPE_BYTES.get(out_dtype, 2)
    if cfg is None or bool(cfg.raw.get("backup_before_save", True)):
        total += int(params * 2 * 1.05)
    write_bps = float(gpu_table().get("disk_write_bytes_per_s", 400e6))
    return (
        total / write_bps,
        f"final save{' and backup' if cfg is None or cfg.raw.get('backup_before_save', True) else ''} of {model} at a rough {write_bps / 1e6:.0f} MB/s",
    )


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
            "finish": self.finish.isoformat(timespec="seconds") if self.finish else None,
            "last_epoch_line": self.last_epoch_line,
            "last_step_line": self.last_step_line,
        }


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
    pred = est.predict_from_bars(epoch_bar, step_bar)
    now = now or _dt.datetime.now().astimezone()
    remaining = pred.remaining_s
    if remaining is not None and final_save_s:
        remaining += final_save_s
    finish = None if remaining is None else now + _dt.timedelta(seconds=remaining)
    return LogOutput(
        pred, epoch_bar.raw if epoch_bar else None, step_bar.raw if step_bar else None, now, finish, final_save_s
    )
