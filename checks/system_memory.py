"""system.memory: total and available RAM against what loading and training the model needs."""

from __future__ import annotations

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.onetrainer.config import DEFAULTS
from otdoctor.probe.host import MemoryInfo
from otdoctor.render.units import human_bytes

from .system_common import family, run_config, thresholds


def memory_need(model_type: str | None = None, ema: str = DEFAULTS["ema"]) -> tuple[int, int, str]:
    """(minimum, recommended) total RAM in bytes for a fine-tune of this model (the guide's, when
    none is named), and why."""
    mem = thresholds()["memory"]
    kind = family(model_type or thresholds()["guide_run"]["model_type"])
    minimum = int(mem[kind]["min_total_bytes"])
    recommended = int(mem[kind]["recommended_total_bytes"])
    basis = "SDXL fine-tuning" if kind == "sdxl" else "SD 1.5 fine-tuning"
    if ema.upper() == "CPU":
        extra = int(mem["ema_cpu_extra_bytes"][kind])
        minimum += extra
        recommended += extra
        basis += " with EMA on the CPU"
    return minimum, recommended, basis


def assess_memory(info: MemoryInfo, minimum: int, recommended: int, basis: str) -> CheckResult:
    data = {
        "total_bytes": info.total_bytes,
        "available_bytes": info.available_bytes,
        "swap_total_bytes": info.swap_total_bytes,
        "min_total_bytes": minimum,
        "recommended_total_bytes": recommended,
        "basis": basis,
        "threshold_why": "OneTrainer loads the checkpoint into system RAM first (an SDXL UNet held in fp32 is "
        "10.3 GB); 16 GB machines swap or are OOM-killed loading SDXL, 32 GB is comfortable "
        "(otdoctor/data/system.toml)",
    }
    found = (
        f"{human_bytes(info.total_bytes)} RAM, {human_bytes(info.available_bytes)} available, "
        f"{human_bytes(info.swap_total_bytes)} swap"
    )
    expected = f"at least {human_bytes(minimum)} RAM for {basis}, {human_bytes(recommended)} recommended"
    why = (
        "OneTrainer loads the checkpoint into system RAM before moving it to the GPU (an SDXL UNet "
        "held in fp32 is 10.3 GB) and caches latents in RAM; too little RAM means swapping or the "
        "kernel's OOM killer ending the run"
    )
    if info.total_bytes < minimum:
        return CheckResult.fail(
            found,
            expected=expected,
            why=why,
            fix=Fix(
                "train on a machine with more RAM, or add swap to survive model loading (slow)",
                (
                    "sudo fallocate -l 16G /swapfile && sudo chmod 600 /swapfile && sudo mkswap /swapfile "
                    "&& sudo swapon /swapfile",
                ),
            ),
            data=data,
        )
    if info.total_bytes < recommended:
        return CheckResult.warn(
            found,
            expected=expected,
            why=why,
            fix=Fix("close other programs while training; set dataloader_threads to 1-2 in the config", ()),
            data=data,
        )
    if info.available_bytes < minimum:
        return CheckResult.warn(
            f"{found}: other programs are using most of it",
            expected=f"at least {human_bytes(minimum)} available for {basis}",
            why=why,
            fix=Fix("see what uses the memory and close it", ("ps aux --sort=-rss | head -n 10",)),
            data=data,
        )
    return CheckResult.ok(f"{found} (needs {human_bytes(minimum)} for {basis})", data=data)


class Memory(Check):
    id = "system.memory"
    title = "System memory"
    area = "system"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        config, _note = run_config(ctx)
        if config is None:
            minimum, recommended, basis = memory_need()
        else:
            minimum, recommended, basis = memory_need(config.model_type, str(config.get("ema") or DEFAULTS["ema"]))
        return assess_memory(ctx.probe.memory(), minimum, recommended, basis)
