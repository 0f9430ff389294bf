"""Which requirements file OneTrainer's launcher installs on this machine, and why.

OneTrainer's `lib.include.sh` (`get_platform_requirements_path`) decides, in this order:

1. `OT_PLATFORM_REQUIREMENTS` when set to anything but `detect` (a file name in the checkout);
2. NVIDIA when `/dev/nvidia0` exists, `nvidia-smi` is on PATH, or `/usr/lib/wsl/lib/nvidia-smi`
   exists: `requirements-cuda.txt` when nvidia-smi's header says CUDA >= 13, else
   `requirements-cuda-legacy.txt` (checkouts without a legacy file always use the cuda file);
3. ROCm when `/dev/kfd` exists: `requirements-rocm.txt`;
4. otherwise `requirements-default.txt` (CPU, or MPS on a Mac).

The launcher then runs `pip install -r requirements-global.txt -r <that file>`.

Use::

    from otdoctor.onetrainer.platforms import choose_requirements
    choice = choose_requirements(ctx.probe, ctx.ot_dir)
    choice.file      # "requirements-cuda.txt"
    choice.reason    # "NVIDIA GPU (/dev/nvidia0), driver supports CUDA 13.0"

All machine access goes through the probe, so tests point `probe.sysroot` at a folder standing in
for `/` and put a recorded `nvidia-smi` on PATH.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from otdoctor.probe.launcher import WSL_NVIDIA_SMI

if TYPE_CHECKING:
    from otdoctor.probe import Probe

GLOBAL_REQUIREMENTS = "requirements-global.txt"
CUDA = "requirements-cuda.txt"
CUDA_LEGACY = "requirements-cuda-legacy.txt"
ROCM = "requirements-rocm.txt"
DEFAULT = "requirements-default.txt"

# The first CUDA major version served by requirements-cuda.txt (cu130 wheels); older drivers get
# the legacy file.
CUDA_FILE_MIN_MAJOR = 13


@dataclass(frozen=True)
class PlatformChoice:
    """The launcher's choice. `platform`: "cuda", "cuda-legacy", "rocm", "default" or "override"."""

    platform: str
    file: str  # as the launcher names it, relative to the checkout
    reason: str  # one line for a finding: why this file
    path: Path | None = None  # ot_dir / file, when a checkout is known
    exists: bool | None = None  # whether that file is in the checkout (None without a checkout)
    cuda_version: str | None = None  # from nvidia-smi's header, when it was read

    @property
    def files(self) -> tuple[str, str]:
        """What `pip install -r` gets, in the launcher's order."""
        return (GLOBAL_REQUIREMENTS, self.file)


def _nvidia_evidence(probe: Probe) -> str | None:
    if probe.system_exists("/dev/nvidia0"):
        return "/dev/nvidia0"
    if probe.which("nvidia-smi"):
        return "nvidia-smi on PATH"
    if probe.system_path(WSL_NVIDIA_SMI).is_file():
        return WSL_NVIDIA_SMI
    return None


def _cuda_major(version: str | None) -> int | None:
    try:
        return int(version.split(".")[0]) if version else None
    except ValueError:
        return None


def choose_requirements(probe: Probe, ot_dir: Path | None = None) -> PlatformChoice:
    """The platform requirements file `./install.sh` would install here, with the reason."""

    def done(platform: str, file: str, reason: str, cuda: str | None = None) -> PlatformChoice:
        path = ot_dir / file if ot_dir is not None else None
        exists = path.is_file() if path is not None else None
        return PlatformChoice(platform, file, reason, path, exists, cuda)

    override = (probe.env.get("OT_PLATFORM_REQUIREMENTS") or "detect").strip()
    if override and override != "detect":
        return done("override", override, f"OT_PLATFORM_REQUIREMENTS={override}")

    evidence = _nvidia_evidence(probe)
    if evidence is not None:
        header = probe.nvidia_smi_cuda_version()
        major = _cuda_major(header.cuda_version)
        has_legacy = ot_dir is None or (ot_dir / CUDA_LEGACY).is_file()
        if major is None:
            why = header.error or "no CUDA version in its header"
            return done("cuda", CUDA, f"NVIDIA GPU ({evidence}); CUDA version unknown ({why})")
        if major >= CUDA_FILE_MIN_MAJOR or not has_legacy:
            suffix = "" if major >= CUDA_FILE_MIN_MAJOR else f"; this checkout has no {CUDA_LEGACY}"
            return done(
                "cuda",
                CUDA,
                f"NVIDIA GPU ({evidence}), driver supports CUDA {header.cuda_version}{suffix}",
                header.cuda_version,
            )
        return done(
            "cuda-legacy",
            CUDA_LEGACY,
            f"NVIDIA GPU ({evidence}), driver supports only CUDA {header.cuda_version} (< {CUDA_FILE_MIN_MAJOR})",
            header.cuda_version,
        )
    if probe.system_exists("/dev/kfd"):
        return done("rocm", ROCM, "AMD GPU (/dev/kfd)")
    return done("default", DEFAULT, "no NVIDIA or AMD GPU found: no /dev/nvidia0, nvidia-smi or /dev/kfd")
