"""`otdoctor gpu`: the GPUs and the processes holding their memory, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from otdoctor.gpu.reasoning import HolderRow
from otdoctor.probe.nvml import GpuInfo, to_jsonable
from otdoctor.redact import redact
from otdoctor.render import human_bytes

JSON_SCHEMA_VERSION = 1


def render_json(info: GpuInfo, rows: Sequence[HolderRow], current_user: str) -> str:
    data: dict[str, Any] = {"schema_version": JSON_SCHEMA_VERSION, "current_user": current_user, **to_jsonable(info)}
    for dev in data["devices"]:
        dev.pop("processes", None)
    data["processes"] = [r.as_dict() for r in rows]
    return redact(json.dumps(data, indent=2)) + "\n"


def render_text(info: GpuInfo, rows: Sequence[HolderRow], out: Console, explain_invisible: str) -> None:
    if info.problem is not None and not info.devices:
        out.print(redact(f"No usable NVIDIA GPU: {info.problem.message}"))
        out.print(redact(f"  {info.problem.meaning}"))
        out.print(redact(f"  fix: {info.problem.fix_summary}"))
        for cmd in info.problem.fix_commands:
            out.print(redact(f"    {cmd}"))
        return
    head = f"Driver {info.driver_version}, CUDA {info.cuda_driver_version_str or 'unknown'} (via {info.source})"
    if info.snapshot:
        head += f", replayed from {info.snapshot}"
    out.print(redact(head))
    if info.cuda_visible_devices is not None:
        out.print(
            redact(
                f"CUDA_VISIBLE_DEVICES={info.cuda_visible_devices}  CUDA_DEVICE_ORDER={info.cuda_device_order or '(unset)'}"
            )
        )
    gpus = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("GPU", "Name", "CC", "Memory used / total", "Free", "Util", "Temp", "Power", "PCIe"):
        gpus.add_column(col, no_wrap=True)
    for d in info.devices:
        used = human_bytes(d.memory_used_bytes)
        power = (
            f"{d.power_mw / 1000:.0f}/{d.power_limit_mw / 1000:.0f} W"
            if d.power_mw is not None and d.power_limit_mw
            else "-"
        )
        pcie = (
            f"gen{d.pcie_gen_current}/{d.pcie_gen_max} x{d.pcie_width_current}/{d.pcie_width_max}"
            if d.pcie_gen_current is not None
            else "-"
        )
        gpus.add_row(
            str(d.index),
            d.name,
            d.compute_capability_str or "-",
            f"{used} / {human_bytes(d.memory_total_bytes)}",
            human_bytes(d.memory_free_bytes),
            f"{d.utilization_gpu_pct}%" if d.utilization_gpu_pct is not None else "-",
            f"{d.temperature_c} °C" if d.temperature_c is not None else "-",
            power,
            pcie,
        )
    out.print(gpus)
    out.print()
    if not rows:
        out.print("No process holds GPU memory.")
        return
    procs = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("GPU", "PID", "User", "Type", "Memory", "Process", "Command line"):
        procs.add_column(col, overflow="fold")
    for r in rows:
        d = r.details
        user = (d.user or "?") + (" (you)" if d.owned_by_current_user else "") if d.visible else "-"
        procs.add_row(
            str(r.process.gpu_index),
            str(r.process.pid),
            user,
            r.process.kind,
            human_bytes(r.process.used_memory_bytes),
            d.name or "-",
            redact(d.command) if d.visible else "(not visible here)",
        )
    out.print(procs)
    if any(not r.visible for r in rows):
        out.print(redact(explain_invisible))
    if any(r.process.used_memory_bytes is None for r in rows):
        out.print("Memory 'unknown': NVML cannot report per-process memory here (Windows WDDM / WSL); it is not zero.")
