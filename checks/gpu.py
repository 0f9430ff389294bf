"""NVIDIA GPU checks: the driver, the GPUs, the torch build against both, and free VRAM.

On a machine without an NVIDIA GPU every check here is SKIP (exit 0); `--require-gpu` makes that
a failure. NVML answers come from `ctx.probe.gpu()` (memoised per run as "gpu").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome, Status
from otdoctor.gpu import reasoning as g
from otdoctor.install import repairs
from otdoctor.probe.nvml import GpuDevice, GpuInfo
from otdoctor.render import human_bytes

WHY_DRIVER = (
    "OneTrainer trains on an NVIDIA GPU through CUDA; without a working driver torch runs on the CPU or not at all"
)


def gpu_info(ctx: Context) -> GpuInfo:
    return ctx.memo("gpu", ctx.probe.gpu)


def _no_gpu(ctx: Context, info: GpuInfo) -> CheckResult | None:
    """SKIP when this machine has no NVIDIA GPU at all (a FAIL with --require-gpu)."""
    if info.nvidia_hardware:
        return None
    summary = "no NVIDIA GPU: no NVIDIA device on the PCI bus and no NVIDIA driver"
    if ctx.options.require_gpu:
        return CheckResult.fail(
            summary,
            expected="an NVIDIA GPU with a working driver (--require-gpu)",
            why=WHY_DRIVER,
            fix=Fix(
                "run on a machine with an NVIDIA GPU, or give this container the GPU", ("docker run --gpus all ...",)
            ),
            data={"nvidia_gpu": False},
        )
    return CheckResult.skip(summary, data={"nvidia_gpu": False})


def _gpu_line(d: GpuDevice) -> str:
    parts = [f"GPU {d.index}: {d.name}"]
    if d.compute_capability_str:
        parts.append(f"compute {d.compute_capability_str}")
    if d.memory_total_bytes is not None:
        parts.append(f"{human_bytes(d.memory_free_bytes)} free of {human_bytes(d.memory_total_bytes)}")
    if d.pcie_gen_current is not None and d.pcie_width_current is not None:
        parts.append(f"PCIe gen{d.pcie_gen_current} x{d.pcie_width_current}")
    if d.temperature_c is not None:
        parts.append(f"{d.temperature_c} °C")
    if d.power_mw is not None and d.power_limit_mw:
        parts.append(f"{d.power_mw / 1000:.0f} W of {d.power_limit_mw / 1000:.0f} W")
    return ", ".join(parts)


class GpuDriver(Check):
    id = "gpu.driver"
    title = "NVIDIA driver"
    area = "gpu"
    timeout_s = 20.0

    def diagnose(self, ctx: Context) -> CheckResult:
        info = gpu_info(ctx)
        skip = _no_gpu(ctx, info)
        if skip is not None:
            return skip
        p = info.problem
        data: dict[str, Any] = {"nvidia_gpu": True, "source": info.source, "snapshot": info.snapshot}
        if info.source == "none" and p is not None:
            found = (
                f"an NVIDIA GPU is on the PCI bus ({', '.join(info.nvidia_pci_devices)}) but NVML fails: {p.message}"
                if info.nvidia_pci_devices
                else f"NVML fails: {p.message}"
            )
            return CheckResult.fail(
                found,
                expected="a loaded NVIDIA driver whose library matches its kernel module",
                why=f"{p.meaning}. {WHY_DRIVER}",
                fix=Fix(p.fix_summary, p.fix_commands),
                details=(f"NVML error {p.code} ({p.kind})",),
                data={**data, "problem": p.kind, "nvml_error": p.code},
            )
        data.update(driver_version=info.driver_version, cuda_driver_version=info.cuda_driver_version_str)
        summary = f"driver {info.driver_version}, supports CUDA up to {info.cuda_driver_version_str or 'unknown'}"
        details = [
            f"{len(info.devices)} GPU(s) via {info.source}"
            + (f" (replayed from {info.snapshot})" if info.snapshot else "")
        ]
        if info.wsl:
            details.append("WSL: the driver is the Windows one; do not install a Linux NVIDIA driver inside WSL")
        if info.source == "nvidia-smi" and p is not None:
            details.append(f"NVML could not be loaded ({p.message}); read through {info.nvidia_smi}")
        return CheckResult.ok(summary, details=tuple(details), data=data)


class GpuDevices(Check):
    id = "gpu.devices"
    title = "NVIDIA GPUs"
    area = "gpu"
    required = False
    requires = ("gpu.driver",)

    def diagnose(self, ctx: Context) -> CheckResult:
        info = gpu_info(ctx)
        skip = _no_gpu(ctx, info)
        if skip is not None:
            return skip
        vis = g.visible_devices(info)
        lines = [_gpu_line(d) for d in info.devices]
        lines += list(vis.notes)
        fails: list[str] = list(vis.problems) + list(info.device_problems)
        warns: list[str] = []
        if vis.order_warning:
            warns.append(vis.order_warning)
        for d in info.devices:
            warns += _device_warnings(d)
        if not info.devices:
            fails.append("the driver is loaded but reports no GPU")
        data = {
            "devices": [
                {
                    "index": d.index,
                    "name": d.name,
                    "uuid": d.uuid,
                    "compute_capability": d.compute_capability_str,
                    "memory_total_bytes": d.memory_total_bytes,
                    "clock_events": list(d.clock_events),
                }
                for d in info.devices
            ],
            "cuda_visible_devices": info.cuda_visible_devices,
            "visible": [d.index for d in vis.devices],
        }
        names = ", ".join(sorted({d.name for d in info.devices})) or "none"
        summary = f"{len(info.devices)} GPU(s): {names}"
        if info.cuda_visible_devices is not None:
            summary += f"; CUDA_VISIBLE_DEVICES={info.cuda_visible_devices}: CUDA sees {len(vis.devices)}"
        if fails:
            return CheckResult.fail(
                fails[0],
                details=tuple(lines + fails[1:] + warns),
                data=data,
                expected="every GPU reachable, and CUDA_VISIBLE_DEVICES naming existing GPUs",
                why="OneTrainer trains on the first GPU CUDA sees; a GPU CUDA cannot see is not used",
                fix=Fix(
                    "list the GPUs and correct CUDA_VISIBLE_DEVICES (indices or GPU-UUIDs)",
                    ("nvidia-smi -L", "export CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=0"),
                ),
            )
        if warns:
            return CheckResult.warn(
                f"{summary}; {warns[0]}",
                details=tuple(lines + warns[1:]),
                data=data,
                expected="a full-width PCIe link, no thermal or power-brake slowdown, no uncorrected ECC errors",
                why="a GPU that runs throttled, on a narrow link or with memory errors trains slowly or crashes",
                fix=Fix(
                    "look at the GPU's state while it is busy",
                    ("nvidia-smi -q -d PERFORMANCE,ECC,PCIE", "export CUDA_DEVICE_ORDER=PCI_BUS_ID"),
                ),
            )
        return CheckResult.ok(summary, details=tuple(lines), data=data)


def _device_warnings(d: GpuDevice) -> list[str]:
    out: list[str] = []
    if d.pcie_width_current and d.pcie_width_max and d.pcie_width_current < d.pcie_width_max:
        out.append(
            f"GPU {d.index} runs its PCIe link at x{d.pcie_width_current} of x{d.pcie_width_max} "
            "(a slot wired for fewer lanes, a riser, or a card not fully seated)"
        )
    idle = "gpu_idle" in d.clock_events or (d.utilization_gpu_pct or 0) == 0
    # GPUs lower the link generation when idle to save power; only a busy GPU on a slow link is news.
    if d.pcie_gen_current and d.pcie_gen_max and d.pcie_gen_current < d.pcie_gen_max and not idle:
        out.append(f"GPU {d.index} runs PCIe gen{d.pcie_gen_current} of gen{d.pcie_gen_max} while busy")
    events = set(d.clock_events)
    if events & {"sw_thermal_slowdown", "hw_thermal_slowdown"}:
        out.append(f"GPU {d.index} slows its clocks because it is too hot ({d.temperature_c} °C): check cooling")
    if "hw_power_brake_slowdown" in events:
        out.append(f"GPU {d.index} is held back by the power brake: the power supply or its cables cannot deliver")
    elif "hw_slowdown" in events:
        out.append(f"GPU {d.index} has a hardware slowdown (temperature or power supply)")
    if d.ecc_uncorrected_errors:
        out.append(
            f"GPU {d.index} has {d.ecc_uncorrected_errors} uncorrected ECC memory errors since the driver loaded: "
            "results can be wrong; reset the GPU, and if they return, the card needs service"
        )
    return out


# gpu.cuda-build ---------------------------------------------------------------------------------
def launcher_choice(ctx: Context, info: GpuInfo) -> Any:
    """The requirements file `./install.sh` would pick (otdoctor.onetrainer.platforms)."""
    from otdoctor.onetrainer import platforms

    if info.snapshot is None:
        return platforms.choose_requirements(ctx.probe, ctx.ot_dir)
    # A replayed machine: its nvidia-smi header shows the CUDA version NVML reports.
    override = (ctx.probe.env.get("OT_PLATFORM_REQUIREMENTS") or "detect").strip()
    cuda = info.cuda_driver_version_str

    def choice(platform: str, file: str, reason: str) -> Any:
        path = ctx.ot_dir / file if ctx.ot_dir is not None else None
        return platforms.PlatformChoice(platform, file, reason, path, path.is_file() if path else None, cuda)

    if override != "detect":
        return choice("override", override, f"OT_PLATFORM_REQUIREMENTS={override}")
    major = int(cuda.split(".")[0]) if cuda else None
    if major is None or major >= platforms.CUDA_FILE_MIN_MAJOR:
        return choice("cuda", platforms.CUDA, f"NVIDIA GPU, driver supports CUDA {cuda}")
    return choice("cuda-legacy", platforms.CUDA_LEGACY, f"NVIDIA GPU, driver supports only CUDA {cuda} (< 13)")


def _arch_list(ctx: Context, tag: str | None) -> tuple[list[str] | None, str]:
    from otdoctor.onetrainer import venv_facts as facts

    torch_facts = getattr(facts, "torch_facts", None)
    if torch_facts is not None:
        tf = torch_facts(ctx)
        arch = tf.data.get("arch_list") if tf is not None and tf.importable else None
        # get_arch_list() is empty where CUDA cannot initialise (no driver here): use the table then.
        if isinstance(arch, list) and arch:
            return [str(a) for a in arch], "torch.cuda.get_arch_list()"
    return g.default_arch_list(tag), f"the official {tag} wheels' arch list" if tag else "unknown"


class CudaBuild(Check):
    id = "gpu.cuda-build"
    fix = repairs.fix_torch_build  # otdoctor fix: see otdoctor/repairs.py
    title = "torch CUDA build vs driver and GPU"
    area = "gpu"
    requires = ("gpu.driver",)
    timeout_s = 200.0  # may import torch once (cached afterwards)

    def diagnose(self, ctx: Context) -> CheckResult:
        from otdoctor.onetrainer.venv_facts import venv_facts

        info = gpu_info(ctx)
        skip = _no_gpu(ctx, info)
        if skip is not None:
            return skip
        table = g.data_table("cuda_drivers.toml")
        dev = g.training_device(info) or (info.devices[0] if info.devices else None)
        fails: list[tuple[str, Fix]] = []
        warns: list[tuple[str, Fix]] = []
        details: list[str] = []
        data: dict[str, Any] = {
            "gpu": dev.name if dev else None,
            "compute_capability": dev.compute_capability_str if dev else None,
        }

        # What ./install.sh would install here, and whether that build can run on this GPU.
        choice = launcher_choice(ctx, info)
        launcher_tag = table["onetrainer_builds"].get(choice.file)
        details.append(
            f"./install.sh would install {choice.file}"
            + (f" ({launcher_tag})" if launcher_tag else "")
            + f": {choice.reason}"
        )
        data["launcher_requirements"] = choice.file
        if dev is not None and dev.compute_capability and launcher_tag:
            arch = g.default_arch_list(launcher_tag) or []
            if not g.arch_supports(arch, dev.compute_capability):
                fails.append(self._launcher_wrong(dev, choice.file, launcher_tag, info))

        vf = venv_facts(ctx)
        static = vf.torch_static if vf is not None and vf.exists else None
        if vf is None or not vf.exists:
            details.insert(0, "no OneTrainer venv yet: only the launcher's choice is checked")
        elif not static or not static.get("version"):
            warns.append(
                (
                    "torch is not installed in OneTrainer's venv",
                    Fix("run OneTrainer's installer", (f"cd {ctx.ot_dir} && ./install.sh",)),
                )
            )
        else:
            self._venv_build(ctx, info, dev, static, choice, launcher_tag, fails, warns, details, data)

        if fails:
            summary, fix = fails[0]
            more = [s for s, _ in fails[1:] + warns]
            return CheckResult.fail(
                summary,
                fix=fix,
                details=tuple(details + more),
                data=data,
                expected="a torch CUDA build the driver supports, with kernels for this GPU",
                why="otherwise torch cannot use the GPU: 'no kernel image is available', "
                "'The NVIDIA driver on your system is too old' or "
                "'Torch not compiled with CUDA enabled'",
            )
        if warns:
            summary, fix = warns[0]
            return CheckResult.warn(
                summary,
                fix=fix,
                details=tuple(details + [s for s, _ in warns[1:]]),
                data=data,
                expected="a CUDA torch in OneTrainer's venv",
                why="OneTrainer cannot train on the GPU without it",
            )
        torch_desc = f"torch {static['version']}" if static and static.get("version") else "no venv yet"
        return CheckResult.ok(
            f"{torch_desc}; fits driver {info.driver_version} and {dev.name if dev else 'the GPU'}",
            details=tuple(details),
            data=data,
        )

    def _launcher_wrong(self, dev: GpuDevice, file: str, tag: str, info: GpuInfo) -> tuple[str, Fix]:
        cc = dev.compute_capability_str
        if tag == "cu130" and dev.compute_capability and dev.compute_capability < (7, 5):
            return (
                f"./install.sh would install {file} ({tag}), which has no kernels for the {dev.name} "
                f"(compute {cc}; CUDA 13 dropped GPUs below 7.5)",
                Fix(
                    "make the launcher install the CUDA 12.6 build instead",
                    ("export OT_PLATFORM_REQUIREMENTS=requirements-cuda-legacy.txt", "./install.sh"),
                ),
            )
        return (
            f"./install.sh would install {file} ({tag}), which has no kernels for the {dev.name} (compute {cc})",
            Fix(
                "update the NVIDIA driver to 580 or newer, so the launcher picks the CUDA 13 build (cu130)",
                ("sudo ubuntu-drivers install", "nvidia-smi   # the header must say CUDA Version: 13.0 or newer")
                if not info.wsl
                else ("install the newest NVIDIA driver on Windows",),
            ),
        )

    def _venv_build(
        self,
        ctx: Context,
        info: GpuInfo,
        dev: GpuDevice | None,
        static: Any,
        choice: Any,
        launcher_tag: str | None,
        fails: list,
        warns: list,
        details: list,
        data: dict,
    ) -> None:
        version = str(static.get("version"))
        cuda = static.get("cuda")
        data.update(torch_version=version, torch_cuda=cuda)
        reinstall_tag = launcher_tag or "cu130"
        venv_pip = f"{ctx.ot_dir}/venv/bin/pip" if ctx.ot_dir else "venv/bin/pip"
        reinstall = Fix(
            f"reinstall torch from the {reinstall_tag} index (what {choice.file} names)",
            (
                f"{venv_pip} install --force-reinstall torch torchvision "
                f"--index-url https://download.pytorch.org/whl/{reinstall_tag}",
            ),
        )
        if static.get("hip"):
            fails.append((f"torch {version} is a ROCm (AMD) build on a machine with an NVIDIA GPU", reinstall))
            return
        tag = g.build_tag(version, cuda)
        if not cuda or tag is None:
            fails.append((f"torch {version} is a CPU-only build, but this machine has an NVIDIA GPU", reinstall))
            return
        data["torch_build"] = tag
        # The driver against the build: the driver's CUDA version must be at least the build's,
        # or the same major version (minor-version compatibility).
        major, minor = g.tag_cuda(tag)
        full, compat = g.min_driver(tag, windows=info.wsl)
        drv_cuda = info.cuda_driver_version
        if drv_cuda is not None:
            if drv_cuda >= major * 1000 + minor * 10:
                details.append(f"driver {info.driver_version} (CUDA {info.cuda_driver_version_str}) runs {tag} builds")
            elif drv_cuda >= major * 1000:
                details.append(
                    f"driver {info.driver_version} (CUDA {info.cuda_driver_version_str}) runs {tag} through CUDA "
                    f"minor-version compatibility; {full or 'a newer driver'} or newer is the full match"
                )
            else:
                fails.append(
                    (
                        f"torch {version} ({tag}) needs an NVIDIA driver for CUDA {major}.{minor} "
                        f"(>= {full or compat}), this driver {info.driver_version} supports CUDA "
                        f"{info.cuda_driver_version_str}: 'The NVIDIA driver on your system is too old'",
                        Fix(
                            "update the driver, or install the build the launcher picks for this driver",
                            (
                                "sudo ubuntu-drivers install",
                                f"{venv_pip} install --force-reinstall torch torchvision --index-url "
                                f"https://download.pytorch.org/whl/{launcher_tag or 'cu126'}",
                            ),
                        ),
                    )
                )
        if dev is None or dev.compute_capability is None:
            return
        arch, arch_source = _arch_list(ctx, tag)
        details.append(f"{tag} kernels: {' '.join(arch or ['unknown'])} (from {arch_source})")
        data["arch_list"] = arch
        if arch and not g.arch_supports(arch, dev.compute_capability):
            cc = dev.compute_capability_str
            if dev.compute_capability >= (12, 0):
                fix = Fix(
                    "install a CUDA 12.8+ build (Blackwell needs cu128 or newer; cu130 wants driver 580+)",
                    (
                        f"{venv_pip} install --force-reinstall torch torchvision "
                        "--index-url https://download.pytorch.org/whl/cu128",
                    ),
                )
            elif dev.compute_capability < (7, 5):
                fix = Fix(
                    "install the CUDA 12.6 build (CUDA 13 dropped GPUs below compute 7.5)",
                    (
                        "export OT_PLATFORM_REQUIREMENTS=requirements-cuda-legacy.txt",
                        f"{venv_pip} install --force-reinstall torch torchvision "
                        "--index-url https://download.pytorch.org/whl/cu126",
                    ),
                )
            else:
                fix = reinstall
            fails.append(
                (
                    f"torch {version} has no kernels for the {dev.name} (compute {cc}, sm_{cc.replace('.', '')}): "
                    "'no kernel image is available for execution on the device'",
                    fix,
                )
            )


# gpu.vram --------------------------------------------------------------------------------------
def _plan(ctx: Context) -> tuple[g.Plan, str, list[str]]:
    notes: list[str] = []
    path = ctx.options.config_path
    if path is None:
        return (
            g.plan_for(None, None, None, "default"),
            "cuda",
            ["no --config given: planning for the guide's SDXL full fine-tune"],
        )
    from otdoctor.errors import UserError
    from otdoctor.onetrainer.config import load_config

    try:
        cfg = load_config(path, ctx.ot_dir)
    except UserError as exc:
        notes.append(f"config not readable ({exc.message}): planning for SDXL full fine-tune")
        return g.plan_for(None, None, None, "default"), "cuda", notes
    optimizer = cfg.get("optimizer") or {}
    fused = optimizer.get("fused_back_pass") if isinstance(optimizer, dict) else None
    plan = g.plan_for(cfg.model_type, cfg.training_method, bool(fused), str(path))
    return plan, str(cfg.get("train_device") or "cuda"), notes


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
        skip = _no_gpu(ctx, info)
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
        free, total = dev.memory_free_bytes, dev.memory_total_bytes
        need = plan.need_vram_bytes
        data: dict[str, Any] = {
            "gpu_index": dev.index,
            "gpu": dev.name,
            "free_vram_bytes": free,
            "total_vram_bytes": total,
            "need_vram_bytes": need,
            "plan": plan.id,
            "plan_source": plan.source,
            "processes": [r.as_dict() for r in rows],
        }
        where = f"GPU {dev.index} ({dev.name})"
        details = [f"plan: {plan.title} needs ~{human_bytes(need)}" if need else f"plan: {plan.title}: no VRAM figure"]
        details += notes + list(g.visible_devices(info).notes)
        details += [_holder_line(r, info) for r in rows]
        if any(not r.visible for r in rows):
            details.append(g.invisible_explanation(info))
        if any(r.process.used_memory_bytes is None for r in rows):
            details.append("per-process memory is unknown here (Windows WDDM / WSL): NVML cannot tell, it is not zero")
        if free is None or total is None:
            return CheckResult.warn(f"{where}: free VRAM unknown", details=tuple(details), data=data)
        if need is None:
            return CheckResult.ok(
                f"{human_bytes(free)} free of {human_bytes(total)} on {where}", details=tuple(details), data=data
            )
        if total < need:
            return CheckResult.fail(
                f"{where} has {human_bytes(total)} in total; {plan.title} needs ~{human_bytes(need)}",
                expected=f"at least ~{human_bytes(need)} of VRAM",
                details=tuple(details),
                data=data,
                why="training stops with 'CUDA out of memory', or spills into shared memory and runs 10-100x slower",
                fix=Fix(
                    "train something lighter on this GPU: a LoRA, Adafactor with fused back pass, gradient "
                    "checkpointing, a lower resolution",
                    ("export OT_CUDA_LOWMEM_MODE=true",),
                ),
            )
        if free >= need:
            return CheckResult.ok(
                f"{human_bytes(free)} free of {human_bytes(total)} on {where}; needs ~{human_bytes(need)}",
                details=tuple(details),
                data=data,
            )
        held = sum(r.process.used_memory_bytes or 0 for r in rows)
        own = [r for r in rows if r.visible and r.details.owned_by_current_user]
        others = [r for r in rows if r.visible and not r.details.owned_by_current_user]
        commands = [f"kill {r.process.pid}   # {r.details.name}" for r in own]
        commands += [f"# ask {r.details.user} to stop PID {r.process.pid} ({r.details.name})" for r in others]
        if info.container and any(not r.visible for r in rows):
            commands.append("nvidia-smi   # on the host: the processes this container cannot see")
        return CheckResult.fail(
            f"{human_bytes(free)} free of {human_bytes(total)} on {where}; {plan.title} needs ~{human_bytes(need)}: "
            f"{len(rows)} process(es) hold {human_bytes(held) if held else 'unknown amounts'}",
            expected=f"~{human_bytes(need)} free when training starts",
            why="training stops with 'CUDA out of memory', or spills into shared memory and runs 10-100x slower",
            fix=Fix(
                "stop the processes that hold VRAM (yours can be stopped for you)", tuple(commands), automatic=bool(own)
            ),
            details=tuple(details),
            data=data,
        )

    def fix(self, ctx: Context, confirm: Callable[[str], bool], dry_run: bool = False) -> FixOutcome:
        """Stop the current user's processes holding VRAM on the training GPU, one confirmation each."""
        info = gpu_info(ctx)
        _plan_, train_device, _notes = _plan(ctx)
        dev = g.training_device(info, train_device)
        if dev is None:
            return FixOutcome(self.id, False, "no GPU to free")
        rows = [r for r in g.holders(info, ctx.probe.process, dev) if r.visible]
        own = [r for r in rows if r.details.owned_by_current_user]
        others = [r for r in rows if not r.details.owned_by_current_user]
        force = bool(ctx.options.extra.get("force"))
        commands = tuple(f"kill {r.process.pid}" + (f"; kill -9 {r.process.pid}" if force else "") for r in own)
        refused = [
            f"PID {r.process.pid} ({r.details.name}) belongs to {r.details.user}: not touched; "
            f"ask {r.details.user} (or an administrator) to stop it"
            for r in others
        ]
        if dry_run:
            plan = [
                f"would stop PID {r.process.pid} ({r.details.command}, {human_bytes(r.process.used_memory_bytes)})"
                for r in own
            ]
            return FixOutcome(self.id, False, "; ".join(plan + refused) or "nothing of yours holds VRAM", commands)
        lines: list[str] = []
        stopped = 0
        for r in own:
            question = (
                f"Stop PID {r.process.pid} ({r.details.name}: {r.details.command}) holding "
                f"{human_bytes(r.process.used_memory_bytes)} on GPU {dev.index}?"
            )
            if not confirm(question):
                lines.append(f"PID {r.process.pid} left running (declined)")
                continue
            res = ctx.probe.stop_process(
                r.process.pid, timeout_s=float(ctx.options.extra.get("stop_timeout_s", 10.0)), force=force
            )
            lines.append(res.message)
            stopped += res.stopped
        ctx.forget("gpu")
        if not own:
            lines.append("none of the processes holding VRAM is yours")
        return FixOutcome(self.id, stopped > 0, "; ".join(lines + refused), commands)


CHECKS = [GpuDriver, GpuDevices, CudaBuild, Vram]

__all__ = ["CHECKS", "Status"]
