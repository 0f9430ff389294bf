"""The CPU: model name and core counts (`lscpu`)."""

from __future__ import annotations

import platform
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuInfo:
    model: str | None
    physical_cores: int | None
    logical_cores: int | None


def cpu_info() -> CpuInfo:
    """`lscpu | grep 'Model name'` and `nproc`, from /proc/cpuinfo where there is one."""
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    model = value.strip()
                    break
    except OSError:
        pass
    model = model or platform.processor() or None
    return CpuInfo(model, psutil.cpu_count(logical=False), psutil.cpu_count(logical=True))
