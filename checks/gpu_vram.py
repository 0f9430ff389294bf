"""gpu.vram: free VRAM on the training GPU against what the planned training needs, who holds the
rest, and a fix that stops the current user's processes holding it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome
from otdoctor.gpu import reasoning as g
from otdoctor.gpu import stopping
from otdoctor.onetrainer.commands import train_line
from otdoctor.probe.nvml import GpuDevice, GpuInfo
from otdoctor.probe.processes import ProcessDetails
from otdoctor.render.units import human_bytes

from .gpu_common import gpu_info, no_gpu


def _plan(ctx: Context) -> tuple[g.Plan, str, list[str]]:
    """The predicted peak of the run's config (`--config`), else of the guide's SDXL fine-tune."""
    path = ctx.options.config_path
    if path is None:
        plan = g.plan_for(None, "default")
        return plan, "cuda", [f"no --config given: planning for the guide's settings ({plan.title})"]
    from otdoctor.errors import UserError
    from otdoctor.onetrainer.config import load_config

    try:
        cfg = load_config(path, ctx.ot_dir)
    except UserError as exc:
        plan = g.plan_for(None, "default")
        return plan, "cuda", [f"config not readable ({exc.message}): planning for the guide's settings"]
    return g.plan_for(cfg.raw, str(path)), str(cfg.get("train_device") or "cuda"), []


def _fit_fix(ctx: Context, plan: g.Plan, free: int) -> Fix:
    """The cheapest changes of the config's own settings that make the step fit in FREE bytes."""
    from otdoctor.vram.advice import advise
    from otdoctor.vram.model import predict
    from otdoctor.vram.settings import read_settings

    assert plan.raw is not None  # a plan with a figure has its settings
    advice = advise(plan.raw, predict(read_settings(plan.raw)), free)
    values = [v for step in advice.steps for v in step.config_values]
    saves = "; ".join(f"{step.id} saves {human_bytes(step.saves_bytes)}" for step in advice.steps)
    config = Path(plan.source) if plan.id == "config" else None
    commands = (train_line(ctx.ot_dir, ctx.probe.env, ctx.probe.cwd, config, values),) if values else ()
    what = f"change these settings ({saves})" if advice.fits else "no change of these settings makes it fit"
    return Fix(what + "; `otdoctor vram --config CONFIG.json` shows the breakdown", commands)


def _holder_line(row: g.HolderRow, info: GpuInfo) -> str:
    p, d = row.process, row.details
    mem = human_bytes(p.used_memory_bytes)  # None -> "unknown", never 0
    if not d.visible:
        return f"PID {p.pid} ({p.kind}, {mem}) on GPU {p.gpu_index}: not visible here"
    who = f"{d.user or '?'}" + (" (you)" if d.owned_by_current_user else "")
    return f"PID {p.pid} {who} {p.kind} {mem} on GPU {p.gpu_index}: {d.name}: {d.command}"


class Vram(Check):
    id = "gpu.vram"
    title = "Free VRAM"
    area = "gpu"
    required = False
    requires = ("gpu.driver",)

    def diagnose(self, ctx: Context) -> CheckResult:
        info = gpu_info(ctx)
        skip = no_gpu(ctx, info)
        if skip is not None:
            return skip
        plan, train_device, notes = _plan(ctx)
        dev = g.training_device(info, train_device)
        if dev is None:
            return CheckResult.fail(
                f"OneTrainer's train_device {train_device} matches no GPU CUDA can see",
                details=tuple(g.visible_devices(info).notes + g.visible_devices(info).problems),
                why="training would not start",
                fix=Fix("correct CUDA_VISIBLE_DEVICES or train_device", ("nvidia-smi -L",)),
            )
        rows = g.holders(info, ctx.probe.process, dev)
        data: dict[str, Any] = {
            "gpu_index": dev.index,
            "gpu": dev.name,
            "free_vram_bytes": dev.memory_free_bytes,
            "total_vram_bytes": dev.memory_total_bytes,
            "need_vram_bytes": plan.need_vram_bytes,
            "plan": plan.id,
            "plan_source": plan.source,
            "components": [{"name": c.name, "bytes": c.bytes, "why": c.why} for c in plan.components],
            "processes": [r.as_dict() for r in rows],
        }
        details = _details(info, plan, notes, rows)
        return _judge(ctx, info, dev, plan, rows, tuple(details), data)

    def fix(self, ctx: Context, confirm: Callable[[str], bool], dry_run: bool = False) -> FixOutcome:
        """Stop the current user's compute processes holding VRAM on the training GPU, one confirmation
        each; never a graphics process or one of the desktop session (otdoctor.gpu.stopping)."""
        info = gpu_info(ctx)
        _plan_, train_device, _notes = _plan(ctx)
        dev = g.training_device(info, train_device)
        if dev is None:
            return FixOutcome(self.id, False, "no GPU to free")
        verdicts = stopping.judge(g.holders(info, ctx.probe.process, dev))
        if dry_run:
            return _fix_plan(ctx, verdicts)
        outcome = _fix_apply(ctx, confirm, dev, verdicts)
        ctx.forget("gpu")
        return outcome


def _details(info: GpuInfo, plan: g.Plan, notes: list[str], rows: list[g.HolderRow]) -> list[str]:
    need = plan.need_vram_bytes
    details = [f"plan: {plan.title} needs ~{human_bytes(need)}" if need else f"plan: {plan.title}"]
    details += [f"  {c.name}: {human_bytes(c.bytes)} ({c.why})" for c in plan.components if c.bytes]
    details += notes + list(g.visible_devices(info).notes)
    details += [_holder_line(r, info) for r in rows]
    if any(not r.visible for r in rows):
        details.append(g.invisible_explanation(info))
    if any(r.process.used_memory_bytes is None for r in rows):
        details.append("per-process memory is unknown here (Windows WDDM / WSL): NVML cannot tell, it is not zero")
    return details


_WHY_OOM = "training stops with 'CUDA out of memory', or spills into shared memory and runs 10-100x slower"


def _judge(
    ctx: Context,
    info: GpuInfo,
    dev: GpuDevice,
    plan: g.Plan,
    rows: list[g.HolderRow],
    details: tuple[str, ...],
    data: dict[str, Any],
) -> CheckResult:
    free, total = dev.memory_free_bytes, dev.memory_total_bytes
    need = plan.need_vram_bytes
    where = f"GPU {dev.index} ({dev.name})"
    if free is None or total is None:
        return CheckResult.warn(f"{where}: free VRAM unknown", details=details, data=data)
    if need is None:
        return CheckResult.ok(
            f"{human_bytes(free)} free of {human_bytes(total)} on {where}", details=details, data=data
        )
    if total < need:
        return CheckResult.fail(
            f"{where} has {human_bytes(total)} in total; {plan.title} needs ~{human_bytes(need)}",
            expected=f"at least ~{human_bytes(need)} of VRAM",
            details=details,
            data=data,
            why=_WHY_OOM,
            fix=_fit_fix(ctx, plan, total),
        )
    if free >= need:
        return CheckResult.ok(
            f"{human_bytes(free)} free of {human_bytes(total)} on {where}; needs ~{human_bytes(need)}",
            details=details,
            data=data,
        )
    return _held(info, rows, f"{human_bytes(free)} free of {human_bytes(total)} on {where}", plan, need, details, data)


def _held(
    info: GpuInfo,
    rows: list[g.HolderRow],
    found: str,
    plan: g.Plan,
    need: int,
    details: tuple[str, ...],
    data: dict[str, Any],
) -> CheckResult:
    """FAIL: the GPU is big enough but processes hold what the plan needs; who they are, what to do."""
    held = sum(r.process.used_memory_bytes or 0 for r in rows)
    verdicts = stopping.judge(rows)  # only a compute process outside the desktop session may be stopped
    own = [v for v in verdicts if v.stoppable]
    commands = stopping.hand_commands(verdicts)
    if info.container and any(not r.visible for r in rows):
        commands.append("nvidia-smi   # on the host: the processes this container cannot see")
    return CheckResult.fail(
        f"{found}; {plan.title} needs ~{human_bytes(need)}: "
        f"{len(rows)} process(es) hold {human_bytes(held) if held else 'unknown amounts'}",
        expected=f"~{human_bytes(need)} free when training starts",
        why=_WHY_OOM,
        fix=Fix(
            "stop the processes that hold VRAM (yours can be stopped for you)", tuple(commands), automatic=bool(own)
        ),
        details=details,
        data=data,
    )


# The fix: the plan lists what it will stop; applying it stops exactly those, if still the same ----
_LISTED = "gpu.vram.listed"  # ctx.options.extra: {pid: ProcessDetails} as the plan showed them


def _fix_plan(ctx: Context, verdicts: list[stopping.Verdict]) -> FixOutcome:
    """The dry run: what would be stopped and what is spared, with why; remembered for the real run."""
    force = bool(ctx.options.extra.get("force"))
    chosen = [v for v in verdicts if v.stoppable]
    ctx.options.extra[_LISTED] = {v.pid: v.details for v in chosen}
    lines = [
        f"would stop PID {v.pid} ({v.details.command}, {human_bytes(v.row.process.used_memory_bytes)})" for v in chosen
    ] or ["nothing holding VRAM here may be stopped by otdoctor"]
    lines += [stopping.spared_line(v) for v in verdicts if not v.stoppable]
    return FixOutcome(Vram.id, False, "\n".join(lines), tuple(stopping.kill_command(v, force) for v in chosen))


def _fix_apply(
    ctx: Context, confirm: Callable[[str], bool], dev: GpuDevice, verdicts: list[stopping.Verdict]
) -> FixOutcome:
    """Stop each process the plan listed, after its own confirmation, if its PID still names it."""
    force = bool(ctx.options.extra.get("force"))
    listed = ctx.options.extra.pop(_LISTED, None)
    targets = listed if listed is not None else {v.pid: v.details for v in verdicts if v.stoppable}
    now = {v.pid: v for v in verdicts}
    results = [_stop_one(ctx, confirm, dev, shown, now.get(pid)) for pid, shown in targets.items()]
    lines = [line for line, _ in results] or ["none of the processes holding VRAM may be stopped by otdoctor"]
    if listed is None:  # no plan was shown: say here what is left alone, and why
        lines += [stopping.spared_line(v) for v in verdicts if not v.stoppable]
    commands = tuple(stopping.kill_command(now[pid], force) for pid in targets if pid in now)
    return FixOutcome(Vram.id, any(stopped for _, stopped in results), "\n".join(lines), commands)


def _stop_one(
    ctx: Context, confirm: Callable[[str], bool], dev: GpuDevice, shown: ProcessDetails, now: stopping.Verdict | None
) -> tuple[str, bool]:
    """Ask, then stop the process SHOWN in the plan if NOW (what holds its PID today) is still it."""
    refusal = _changed_since_listed(shown, now)
    if refusal is not None or now is None:
        return refusal or "", False
    question = (
        f"Stop PID {shown.pid} ({shown.name}: {shown.command}) holding "
        f"{human_bytes(now.row.process.used_memory_bytes)} on GPU {dev.index}?"
    )
    if not confirm(question):
        return f"PID {shown.pid} left running (declined)", False
    timeout_s = float(ctx.options.extra.get("stop_timeout_s", 10.0))
    res = ctx.probe.stop_process(shown, timeout_s=timeout_s, force=bool(ctx.options.extra.get("force")))
    return res.message, res.stopped and res.signal is not None


def _changed_since_listed(shown: ProcessDetails, now: stopping.Verdict | None) -> str | None:
    """Why the process the plan listed is not stopped now; None when it still may be."""
    pid = shown.pid
    if now is None:
        return f"PID {pid} ({shown.name}) no longer holds VRAM: not touched"
    if not shown.same_process(now.details):
        return f"PID {pid} is no longer the process listed ({shown.name}; it exited since): not touched"
    if now.spared is not None:
        return stopping.spared_line(now)
    return None
