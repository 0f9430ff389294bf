"""The GPU table from `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`.

Used where NVML cannot be loaded but `nvidia-smi` runs (WSL keeps it in /usr/lib/wsl/lib).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from otdoctor.probe.commands import CommandResult
from otdoctor.probe.nvml_types import GpuDevice, GpuProcess

SMI_FIELDS = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "driver_version",
    "memory.total",
    "memory.used",
    "memory.free",
    "compute_cap",
    "utilization.gpu",
    "utilization.memory",
    "temperature.gpu",
    "power.draw",
    "power.limit",
    "pcie.link.gen.current",
    "pcie.link.gen.max",
    "pcie.link.width.current",
    "pcie.link.width.max",
)
MIB = 1024 * 1024


def _smi_num(value: str) -> float | None:
    value = value.strip()
    try:
        return float(value)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def _smi_int(value: str, scale: float = 1.0) -> int | None:
    n = _smi_num(value)
    return None if n is None else int(round(n * scale))


def parse_smi_cuda_version(header: str) -> int | None:
    """`CUDA Version: 13.0` in nvidia-smi's banner -> 13000."""
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header)
    return int(m.group(1)) * 1000 + int(m.group(2)) * 10 if m else None


def _apps_by_uuid(apps: CommandResult) -> dict[str, list[tuple[int, int | None]]]:
    """`--query-compute-apps=pid,used_memory,gpu_uuid` rows grouped by GPU UUID."""
    by_uuid: dict[str, list[tuple[int, int | None]]] = {}
    if apps.ok:
        for line in apps.stdout.splitlines():
            cols = [c.strip() for c in line.split(",")]
            if len(cols) >= 3 and cols[0].isdigit():
                by_uuid.setdefault(cols[2], []).append((int(cols[0]), _smi_int(cols[1], MIB)))
    return by_uuid


def _compute_capability(text: str) -> tuple[int, int] | None:
    cc = text.split(".")
    return (int(cc[0]), int(cc[1])) if len(cc) == 2 and all(c.isdigit() for c in cc) else None


def _device(v: dict[str, str], apps: CommandResult, by_uuid: dict[str, list[tuple[int, int | None]]]) -> GpuDevice:
    """One `--query-gpu` row (SMI_FIELDS -> text) as a GpuDevice."""
    index = int(v["index"])
    procs = tuple(GpuProcess(pid, "compute", used, index, v["uuid"]) for pid, used in by_uuid.get(v["uuid"], []))
    return GpuDevice(
        index=index,
        name=v["name"],
        uuid=v["uuid"],
        pci_bus_id=v["pci.bus_id"],
        compute_capability=_compute_capability(v["compute_cap"]),
        memory_total_bytes=_smi_int(v["memory.total"], MIB),
        memory_free_bytes=_smi_int(v["memory.free"], MIB),
        memory_used_bytes=_smi_int(v["memory.used"], MIB),
        utilization_gpu_pct=_smi_int(v["utilization.gpu"]),
        utilization_memory_pct=_smi_int(v["utilization.memory"]),
        temperature_c=_smi_int(v["temperature.gpu"]),
        power_mw=_smi_int(v["power.draw"], 1000),
        power_limit_mw=_smi_int(v["power.limit"], 1000),
        pcie_gen_current=_smi_int(v["pcie.link.gen.current"]),
        pcie_gen_max=_smi_int(v["pcie.link.gen.max"]),
        pcie_width_current=_smi_int(v["pcie.link.width.current"]),
        pcie_width_max=_smi_int(v["pcie.link.width.max"]),
        processes=procs,
        processes_error=None if apps.ok else apps.describe_failure(),
    )


def read_smi(
    smi: str, run: Callable[[Sequence[str]], CommandResult]
) -> tuple[str | None, int | None, tuple[GpuDevice, ...]] | None:
    """`nvidia-smi --query-gpu=... --format=csv,noheader,nounits`; None when it fails too."""
    res = run([smi, "--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits"])
    if not res.ok:
        return None
    apps = run([smi, "--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader,nounits"])
    by_uuid = _apps_by_uuid(apps)
    driver = None
    devices: list[GpuDevice] = []
    for line in res.stdout.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != len(SMI_FIELDS):
            continue
        v = dict(zip(SMI_FIELDS, cols, strict=True))
        driver = v["driver_version"]
        devices.append(_device(v, apps, by_uuid))
    header = run([smi])
    cuda = parse_smi_cuda_version(header.stdout) if header.ok else None
    return driver, cuda, tuple(devices)
