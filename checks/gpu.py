"""NVIDIA GPU checks: the driver, the GPUs, the torch build against both, and free VRAM.

On a machine without an NVIDIA GPU every check here is SKIP (exit 0); `--require-gpu` makes that
a failure. NVML answers come from `ctx.probe.gpu()` (memoised per run as "gpu").

gpu.driver and gpu.devices live here; gpu.cuda-build in gpu_cuda.py, gpu.vram in gpu_vram.py.
`CHECKS` below is the area's order in every output.
"""

from __future__ import annotations

from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, Status
from otdoctor.gpu import reasoning as g
from otdoctor.probe.nvml import GpuDevice
from otdoctor.render.units import human_bytes

from .gpu_common import WHY_DRIVER, gpu_info, no_gpu
from .gpu_cuda import CudaBuild
from .gpu_vram import Vram


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
        skip = no_gpu(ctx, info)
        if skip is not None:
            return skip
        p = info.problem
        data: dict[str, Any] = {"nvidia_gpu": True, "source": info.source, "snapshot": info.snapshot}
        if p is not None and p.kind == "snapshot-invalid":
            return CheckResult.fail(
                p.message,
                expected="a snapshot written by scripts/record_nvml.py, or no OTDOCTOR_NVML_SNAPSHOT",
                why=p.meaning,
                fix=Fix(p.fix_summary, p.fix_commands),
                data={**data, "problem": p.kind},
            )
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
        skip = no_gpu(ctx, info)
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


CHECKS = [GpuDriver, GpuDevices, CudaBuild, Vram]

__all__ = ["CHECKS", "Status"]
