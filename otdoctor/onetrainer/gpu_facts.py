"""The GPU facts that decide OneTrainer's platform file: NVML through the probe (the same facts the
gpu.* checks see), else `nvidia-smi` (header and `--query-gpu=name,driver_version,compute_cap`),
`/dev/nvidia0` and `/dev/kfd` as the launcher looks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otdoctor.probe.launcher import find_nvidia_smi

if TYPE_CHECKING:
    from otdoctor.probe import Probe


@dataclass(frozen=True)
class GpuFacts:
    nvidia: bool
    rocm: bool
    smi: str | None = None
    driver_version: str | None = None
    driver_cuda: tuple[int, int] | None = None  # the nvidia-smi header's "CUDA Version"
    compute_caps: tuple[tuple[int, int], ...] = ()
    names: tuple[str, ...] = ()


def parse_capability(text: str) -> tuple[int, int]:
    """ "7.5" -> (7, 5)."""
    major, minor = text.split(".")
    return int(major), int(minor)


def cuda_of_build(tag: str) -> tuple[int, int]:
    """A PyTorch CUDA build tag's CUDA version: "cu130" -> (13, 0), "cu126" -> (12, 6)."""
    digits = tag.removeprefix("cu")
    return int(digits[:-1]), int(digits[-1])


def detect_gpu(probe: Probe) -> GpuFacts:
    """The machine's GPUs, from NVML when it describes any, else as the launcher finds them."""
    return _from_nvml(probe) or _from_smi(probe)


def _from_nvml(probe: Probe) -> GpuFacts | None:
    try:
        info: Any = probe.gpu()
    except Exception:  # a GPU the driver cannot describe: fall back to what the launcher sees
        return None
    if info is None or not getattr(info, "devices", ()):
        return None
    v = info.cuda_driver_version
    return GpuFacts(
        True,
        probe.system_exists("/dev/kfd"),
        smi=None,
        driver_version=info.driver_version,
        driver_cuda=(v // 1000, (v % 1000) // 10) if v else None,
        compute_caps=tuple(d.compute_capability for d in info.devices if d.compute_capability),
        names=tuple(d.name for d in info.devices),
    )


def _from_smi(probe: Probe) -> GpuFacts:
    smi = find_nvidia_smi(probe)
    nvidia = smi is not None or probe.system_exists("/dev/nvidia0")
    rocm = probe.system_exists("/dev/kfd")
    if smi is None:
        return GpuFacts(nvidia, rocm)
    driver_cuda = None
    header = probe.run([smi], timeout_s=15)
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header.stdout)
    if m:
        driver_cuda = (int(m.group(1)), int(m.group(2)))
    caps: list[tuple[int, int]] = []
    names: list[str] = []
    driver = None
    query = probe.run([smi, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"], timeout_s=15)
    for line in query.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            names.append(parts[0])
            driver = parts[1] or driver
            cm = re.match(r"(\d+)\.(\d+)", parts[2])
            if cm:
                caps.append((int(cm.group(1)), int(cm.group(2))))
    return GpuFacts(nvidia, rocm, smi, driver, driver_cuda, tuple(caps), tuple(names))
