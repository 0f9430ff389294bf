"""Facts OneTrainer's launcher reads from the machine to choose its requirements file.

`lib.include.sh` looks at `/dev/nvidia0`, `nvidia-smi` on PATH, `/usr/lib/wsl/lib/nvidia-smi`
and `/dev/kfd`; newer checkouts also read the CUDA version from nvidia-smi's header to pick
between `requirements-cuda.txt` (CUDA 13 builds) and `requirements-cuda-legacy.txt`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otdoctor.probe import Probe

WSL_NVIDIA_SMI = "/usr/lib/wsl/lib/nvidia-smi"

_HEADER = re.compile(r"CUDA Version:\s*([0-9]+(?:\.[0-9]+)*)")
_DRIVER = re.compile(r"Driver Version:\s*([0-9][0-9.]*)")


@dataclass(frozen=True)
class SmiHeader:
    executable: str | None  # the nvidia-smi that was run; None when there is none
    cuda_version: str | None  # "13.0" from the header; None when unreadable
    driver_version: str | None = None
    error: str | None = None  # why the header could not be read


def find_nvidia_smi(probe: Probe) -> str | None:
    """`command -v nvidia-smi`, else WSL's copy (not on PATH there)."""
    found = probe.which("nvidia-smi")
    if found:
        return found
    wsl = probe.system_path(WSL_NVIDIA_SMI)
    return str(wsl) if wsl.is_file() else None


def nvidia_smi_header(probe: Probe, timeout_s: float = 15.0) -> SmiHeader:
    """`nvidia-smi` (plain): the "CUDA Version: X.Y" of its header."""
    exe = find_nvidia_smi(probe)
    if exe is None:
        return SmiHeader(None, None, error="nvidia-smi not found")
    res = probe.run([exe], timeout_s=timeout_s)
    text = res.stdout
    cuda = _HEADER.search(text)
    driver = _DRIVER.search(text)
    if cuda is None:
        return SmiHeader(
            exe,
            None,
            driver.group(1) if driver else None,
            error=res.describe_failure() if not res.ok else "no 'CUDA Version' in nvidia-smi's header",
        )
    return SmiHeader(exe, cuda.group(1), driver.group(1) if driver else None)
