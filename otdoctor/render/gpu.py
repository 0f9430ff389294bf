"""`otdoctor gpu`: the GPUs and the processes holding their memory, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from otdoctor.gpu.reasoning import HolderRow
from otdoctor.probe.nvml import GpuDevice, GpuInfo, to_jsonable
from otdoctor.redact import redact
from otdoctor.render.emit import Destination, Draw
from otdoctor.render.safe_text import field
from otdoctor.render.units import human_bytes

JSON_SCHEMA_VERSION = 1


def render_json(info: GpuInfo, rows: Sequence[HolderRow], current_user: str) -> str:
    data: dict[str, Any] = {"schema_version": JSON_SCHEMA_VERSION, "current_user": current_user, **to_jsonable(info)}
    for dev in data["devices"]:
        dev.pop("processes", None)
    data["processes"] = [r.as_dict() for r in rows]
    return redact(json.dumps(data, indent=2)) + "\n"


def _problem_lines(info: GpuInfo) -> list[str]:
    assert info.problem is not None
    p = info.problem
    return [f"No usable NVIDIA GPU: {p.message}", f"  {p.meaning}", f"  fix: {p.fix_summary}"] + [
        f"    {cmd}" for cmd in p.fix_commands
    ]


def _header_lines(info: GpuInfo) -> list[str]:
    head = f"Driver {info.driver_version}, CUDA {info.cuda_driver_version_str or 'unknown'} (via {info.source})"
    if info.snapshot:
        head += f", replayed from {info.snapshot}"
    lines = [head]
    if info.cuda_visible_devices is not None:
        lines.append(
            f"CUDA_VISIBLE_DEVICES={info.cuda_visible_devices}  CUDA_DEVICE_ORDER={info.cuda_device_order or '(unset)'}"
        )
    return lines


def _or_dash(value: object, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _device_row(d: GpuDevice) -> tuple[str, ...]:
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
    return (
        str(d.index),
        field(d.name),
        d.compute_capability_str or "-",
        f"{human_bytes(d.memory_used_bytes)} / {human_bytes(d.memory_total_bytes)}",
        human_bytes(d.memory_free_bytes),
        _or_dash(d.utilization_gpu_pct, "{}%"),
        _or_dash(d.temperature_c, "{} °C"),
        power,
        pcie,
    )


def _devices_table(info: GpuInfo) -> Table:
    gpus = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("GPU", "Name", "CC", "Memory used / total", "Free", "Util", "Temp", "Power", "PCIe"):
        gpus.add_column(col, no_wrap=True)
    for d in info.devices:
        gpus.add_row(*_device_row(d))
    return gpus


def _holder_row(r: HolderRow) -> tuple[str, ...]:
    d = r.details
    user = field(d.user or "?") + (" (you)" if d.owned_by_current_user else "") if d.visible else "-"
    return (
        str(r.process.gpu_index),
        str(r.process.pid),
        user,
        r.process.kind,
        human_bytes(r.process.used_memory_bytes),
        field(d.name or "-"),
        field(d.command) if d.visible else "(not visible here)",
    )


def _holders_table(rows: Sequence[HolderRow]) -> Table:
    procs = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("GPU", "PID", "User", "Type", "Memory", "Process", "Command line"):
        procs.add_column(col, overflow="fold")
    for r in rows:
        procs.add_row(*_holder_row(r))
    return procs


def render_text(info: GpuInfo, rows: Sequence[HolderRow], out: Console, explain_invisible: str) -> None:
    if info.problem is not None and not info.devices:
        for line in _problem_lines(info):
            out.print(field(line))
        return
    for line in _header_lines(info):
        out.print(field(line))
    out.print(_devices_table(info))
    out.print()
    if not rows:
        out.print("No process holds GPU memory.")
        return
    out.print(_holders_table(rows))
    if any(not r.visible for r in rows):
        out.print(field(explain_invisible))
    if any(r.process.used_memory_bytes is None for r in rows):
        out.print("Memory 'unknown': NVML cannot report per-process memory here (Windows WDDM / WSL); it is not zero.")


@dataclass(frozen=True)
class GpuView:
    """`otdoctor gpu`: the devices, the processes holding memory, and why some cannot be seen."""

    info: GpuInfo
    rows: Sequence[HolderRow]
    current_user: str
    explain_invisible: str

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        render_text(self.info, self.rows, dest.console(), self.explain_invisible)

    def _json(self, dest: Destination) -> None:
        dest.write(render_json(self.info, self.rows, self.current_user))
