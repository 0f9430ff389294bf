"""Synthetic mode: `synthetic_train.py` (shipped beside this file) in any interpreter with torch and
diffusers, training a UNet from `data/unet_configs.toml` with random weights on random latents.

The script reports on stdout as `OTDOCTOR_EVENT {json}` / `OTDOCTOR_RESULT {json}` lines; its
progress bar goes to stderr like OneTrainer's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from otdoctor.errors import UserError
from otdoctor.estimate.progress_bars import BarStream, BarUpdate
from otdoctor.probe.child import Child, terminate_as_interrupt
from otdoctor.probe.nvml import gpu_name_and_driver
from otdoctor.render.units import human_bytes
from otdoctor.smoke.folders import run_folder
from otdoctor.smoke.meter import Meter, VramPoller, rate_spread
from otdoctor.smoke.onetrainer_phases import RssPoller
from otdoctor.smoke.results import SmokeResult
from otdoctor.smoke.run import SCRIPT, Progress, SmokeOptions, explain_failure, noop, unet_models

_RESULT = "OTDOCTOR_RESULT "
_EVENT = "OTDOCTOR_EVENT "
_UNET_ONLY_NOTE = (
    "UNet only with random weights: OneTrainer also trains text encoder 1 with the guide's settings, "
    "so expect real it/s somewhat lower"
)


def synthetic_argv(python: Path, opts: SmokeOptions, save_dir: Path | None) -> list[str]:
    models = unet_models()
    if opts.model not in models:
        raise UserError(f"unknown model {opts.model!r}; choose one of {', '.join(models)}", exit_code=2)
    model = models[opts.model]
    resolution = opts.resolution or int(model["default_resolution"])
    argv = [str(python), "-u", str(SCRIPT), "--model-json", json.dumps(model), "--resolution", str(resolution)]
    argv += ["--batch-size", str(opts.batch_size), "--dtype", opts.dtype, "--steps", str(opts.steps)]
    argv += ["--warmup", str(opts.warmup), "--device", opts.device]
    if opts.model == "tiny":
        # A toy UNet gains nothing from more threads, and on a busy CPU their barriers cost 10x.
        argv += ["--threads", "1"]
    for wanted, flag in (
        (opts.gradient_checkpointing, "--gradient-checkpointing"),
        (opts.fused_back_pass, "--fused-back-pass"),
        (opts.own_adafactor, "--own-adafactor"),
    ):
        if wanted:
            argv.append(flag)
    if save_dir is not None:
        argv += ["--save-dir", str(save_dir)]
        if opts.measure_save:
            argv.append("--measure-save")
        if opts.save_every:
            argv += ["--save-every", str(opts.save_every)]
    return argv


class _ScriptOutput:
    """Reads the script's output: bars go to `progress`, the result line is kept, the rest is a tail."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.meter = Meter(time.monotonic())  # what a run stopped at its timeout had measured
        self.stream = BarStream()
        self.result: dict[str, Any] | None = None
        self.tail: list[str] = []

    def __call__(self, text: str, t: float) -> None:
        for ev in self.stream.feed(text, t):
            if isinstance(ev, BarUpdate):
                self.meter.add(ev)
                self.progress("training", ev)
            elif ev.startswith(_RESULT):
                self.result = json.loads(ev.split(" ", 1)[1])
            elif ev.startswith(_EVENT):
                data = json.loads(ev.split(" ", 1)[1])
                self.progress(
                    f"model ready in {data.get('load_s', 0):.1f} s ({data.get('parameters')} parameters, "
                    f"{data.get('device')})",
                    None,
                )
            else:
                self.tail.append(ev)
                del self.tail[:-200]

    def close(self) -> None:
        self("", time.monotonic())
        for ev in self.stream.close():
            if isinstance(ev, str) and ev.startswith(_RESULT):
                self.result = json.loads(ev.split(" ", 1)[1])


def _train(python: Path, opts: SmokeOptions, out: _ScriptOutput) -> tuple[int | None, int | None, str]:
    """Run the script to its end in a temporary folder; (exit code, peak VRAM, where that comes from)."""
    with terminate_as_interrupt(), run_folder(keep=opts.keep) as folder:
        save_dir = folder / "saves"
        save_dir.mkdir()
        # tqdm reads any TQDM_DISABLE, even "0", as "disable": the bars are what the meter reads.
        env = {**{k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}, "PYTHONUNBUFFERED": "1"}
        child = Child(synthetic_argv(Path(python), opts, save_dir), env, folder, out)
        poller, rss = VramPoller(child.pid), RssPoller(child.pid)
        try:
            rc = child.wait(opts.timeout_s)
            if rc is None:
                child.stop()
                figures = partial_figures(out, opts, rss)
                raise UserError(
                    f"the synthetic run did not finish within {opts.timeout_s:.0f} s: {figures}",
                    hint="a smaller run finishes: otdoctor smoke --tiny, or --resolution 512 --steps 3",
                )
        except BaseException:
            child.stop()
            poller.stop()
            rss.stop()
            raise
        rss.stop()
        out.close()
        peak_vram, vram_source = poller.stop()
    return rc, peak_vram, vram_source


def partial_figures(out: _ScriptOutput, opts: SmokeOptions, rss: RssPoller) -> str:
    """What a run stopped at its timeout had measured: steps done, the speed so far, peak RAM."""
    trace = out.meter.current("step")
    done = int(trace.points[-1][1]) if trace is not None and trace.points else 0
    total = int(trace.total) if trace is not None and trace.total else opts.steps + opts.warmup
    rate = out.meter.step_rate(opts.warmup) or out.meter.step_rate(0)
    parts = [f"{done} of {total} steps done"]
    parts.append(f"{rate.its:.3g} it/s over {rate.steps} steps" if rate else "no speed yet")
    if out.meter.load_s is not None:
        parts.append(f"model ready after {out.meter.load_s:.0f} s")
    peak = rss.stop()
    parts.append(f"peak RAM {human_bytes(peak)}" if peak else "peak RAM not measured")
    return ", ".join(parts)


def run_synthetic(python: Path, opts: SmokeOptions, progress: Progress = noop) -> SmokeResult:
    if not Path(python).exists():
        raise UserError(f"interpreter not found: {python}", exit_code=2)
    models = unet_models()
    resolution = opts.resolution or int(models.get(opts.model, {}).get("default_resolution", 1024))
    progress(
        f"starting {python} (synthetic {opts.model} UNet, {resolution} px, batch {opts.batch_size}, {opts.dtype})", None
    )
    out = _ScriptOutput(progress)
    rc, peak_vram, vram_source = _train(python, opts, out)
    gpu_name, driver = gpu_name_and_driver()
    if out.result is None:
        error = explain_failure("\n".join(out.tail)) or f"the synthetic trainer exited with code {rc}"
        return SmokeResult(
            "synthetic",
            opts.model,
            resolution,
            opts.batch_size,
            opts.dtype,
            gpu_name or "unknown",
            ok=False,
            error=error,
            notes=out.tail[-15:],
        )
    return _result(out.result, opts, resolution, (gpu_name, driver), (peak_vram, vram_source))


def _result(
    r: dict[str, Any],
    opts: SmokeOptions,
    resolution: int,
    gpu: tuple[str | None, str | None],
    vram: tuple[int | None, str],
) -> SmokeResult:
    """The SmokeResult for the script's `OTDOCTOR_RESULT` line `r`."""
    gpu_name, driver = gpu
    peak_vram, vram_source = vram
    spread = rate_spread(r.get("step_s") or [])
    if spread is not None and r.get("its"):
        r["its_low"], r["its_high"] = min(spread[0], r["its"]), max(spread[1], r["its"])
    on_gpu = r.get("device") == "cuda"
    if on_gpu and peak_vram is None:
        peak_vram, vram_source = r.get("peak_memory_bytes"), r.get("peak_memory_kind", "torch")
    notes = [] if opts.model == "tiny" else [_UNET_ONLY_NOTE]
    if not r.get("loss_finite"):
        notes.append("the loss became NaN or infinite: with fp16 on SDXL use bf16")
    return SmokeResult(
        mode="synthetic",
        model=opts.model,
        resolution=resolution,
        batch_size=opts.batch_size,
        dtype=opts.dtype,
        gpu=gpu_name if on_gpu and gpu_name else (r.get("device_name") or "CPU"),
        steps=r.get("steps", 0),
        warmup_steps=r.get("warmup_steps", 0),
        its=r.get("its"),
        its_low=r.get("its_low"),
        its_high=r.get("its_high"),
        load_s=r.get("load_s"),
        peak_vram_bytes=peak_vram if on_gpu else None,
        peak_vram_source=vram_source if on_gpu else "no GPU used",
        peak_memory_bytes=r.get("peak_memory_bytes"),
        peak_memory_kind=r.get("peak_memory_kind"),
        driver=driver,
        torch=r.get("torch"),
        diffusers=r.get("diffusers"),
        optimizer=r.get("optimizer_impl"),
        gradient_checkpointing=opts.gradient_checkpointing,
        fused_back_pass=r.get("fused_back_pass"),
        parameters=r.get("parameters"),
        loss_first=r.get("loss_first"),
        loss_last=r.get("loss_last"),
        loss_finite=r.get("loss_finite"),
        save_bytes=r.get("save_bytes"),
        save_s=r.get("save_s"),
        wall_s=r.get("wall_s"),
        ok=bool(r.get("loss_finite")) and bool(r.get("its")),
        error=None if r.get("loss_finite") else "loss not finite",
        notes=notes,
    )
