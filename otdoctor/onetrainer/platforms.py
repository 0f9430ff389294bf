"""Which platform requirements file OneTrainer gets on this machine, and why.

OneTrainer's `lib.include.sh` (`get_platform_requirements_path`) decides, in this order:

1. `OT_PLATFORM_REQUIREMENTS` when set to anything but `detect` (a file name in the checkout);
2. NVIDIA when `/dev/nvidia0` exists, `nvidia-smi` is on PATH, or `/usr/lib/wsl/lib/nvidia-smi`
   exists: `requirements-cuda.txt` when nvidia-smi's header says CUDA >= 13, else
   `requirements-cuda-legacy.txt` (checkouts without a legacy file always use the cuda file);
3. ROCm when `/dev/kfd` exists: `requirements-rocm.txt`;
4. otherwise `requirements-default.txt` (CPU, or MPS on a Mac).

The launcher then runs `pip install -r requirements-global.txt -r <that file>`.

Two questions share this order and this module: `choose_requirements` answers "what would
`./install.sh` install here" (the checks compare the venv with it), `choose_platform` answers "what
should `otdoctor install` install here": the same steps, with `--platform`, and the NVIDIA step
refined by the GPUs' generation (a GPU below compute capability 7.5 or a driver older than CUDA 13
gets the legacy file; a Blackwell GPU on such a driver cannot be served at all).

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
from typing import TYPE_CHECKING, Protocol

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.onetrainer.gpu_facts import GpuFacts, cuda_of_build, detect_gpu, parse_capability
from otdoctor.probe.launcher import WSL_NVIDIA_SMI

if TYPE_CHECKING:
    from otdoctor.probe import Probe

# The platform keys of install.toml's [platform_files]: cuda, cuda-legacy, rocm, cpu.
PLATFORM_FILES: dict[str, str] = load_table("install.toml")["platform_files"]
GLOBAL_REQUIREMENTS = "requirements-global.txt"
CUDA = PLATFORM_FILES["cuda"]
CUDA_LEGACY = PLATFORM_FILES["cuda-legacy"]
ROCM = PLATFORM_FILES["rocm"]
DEFAULT = PLATFORM_FILES["cpu"]
PLATFORMS = ("auto", *PLATFORM_FILES)

_DRIVERS = load_table("cuda_drivers.toml")
_BLACKWELL = load_table("install.toml")["blackwell"]
# The builds the two NVIDIA files install (cu130, cu126), and their CUDA versions.
CUDA_FILE_BUILD_TAG: str = _DRIVERS["onetrainer_builds"][CUDA]
CUDA_FILE_BUILD = cuda_of_build(CUDA_FILE_BUILD_TAG)
LEGACY_FILE_BUILD = cuda_of_build(_DRIVERS["onetrainer_builds"][CUDA_LEGACY])
# The first CUDA major version served by requirements-cuda.txt; older drivers get the legacy file.
CUDA_FILE_MIN_MAJOR = CUDA_FILE_BUILD[0]
CUDA_FILE_MIN_DRIVER = _DRIVERS["minor_compat_min_driver"]["linux"][str(CUDA_FILE_MIN_MAJOR)]
CUDA_FILE_TOOLKIT_DRIVER = _DRIVERS["toolkit_min_driver"]["linux"]["{}.{}".format(*CUDA_FILE_BUILD)]
CUDA_FILE_MIN_CAPABILITY = parse_capability(_DRIVERS["min_compute_capability"][str(CUDA_FILE_MIN_MAJOR)])
BLACKWELL_CAPABILITY = parse_capability(_BLACKWELL["min_compute_capability"])
BLACKWELL_MIN_CUDA: str = _BLACKWELL["min_cuda"]


@dataclass(frozen=True)
class PlatformChoice:
    """A platform file and why. `key`: cuda, cuda-legacy, rocm, cpu, or custom (a file otdoctor
    does not know, named by OT_PLATFORM_REQUIREMENTS)."""

    key: str
    file: str  # as the launcher names it, relative to the checkout
    reason: str  # one line for a finding: why this file
    path: Path | None = None  # ot_dir / file, when a checkout is known
    exists: bool | None = None  # whether that file is in the checkout (None without a checkout)
    cuda_version: str | None = None  # from nvidia-smi's header, when it was read
    warnings: tuple[str, ...] = ()
    blocker: str | None = None  # no file in the checkout suits this machine: why, and what to do
    overridden: bool = False  # OT_PLATFORM_REQUIREMENTS named the file

    @property
    def platform(self) -> str:
        """The launcher's word for the choice: "cuda", "cuda-legacy", "rocm", "default" or "override"."""
        if self.overridden:
            return "override"
        return "default" if self.key == "cpu" else self.key

    @property
    def files(self) -> tuple[str, str]:
        """What `pip install -r` gets, in the launcher's order."""
        return (GLOBAL_REQUIREMENTS, self.file)


class _Rules(Protocol):
    def overridden(self, file: str) -> PlatformChoice: ...
    def nvidia(self) -> PlatformChoice | None: ...
    def rocm(self) -> PlatformChoice | None: ...
    def cpu(self) -> PlatformChoice: ...


def _choose(probe: Probe, rules: _Rules) -> PlatformChoice:
    """The launcher's order: the variable, then NVIDIA, then AMD, then the CPU."""
    override = (probe.env.get("OT_PLATFORM_REQUIREMENTS") or "detect").strip()
    if override and override != "detect":
        return rules.overridden(override)
    return rules.nvidia() or rules.rocm() or rules.cpu()


def _key_of(file: str) -> str:
    return next((k for k, f in PLATFORM_FILES.items() if f == file), "custom")


# What ./install.sh does ----------------------------------------------------------------------------
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


class _Launcher:
    def __init__(self, probe: Probe, ot_dir: Path | None) -> None:
        self.probe = probe
        self.ot_dir = ot_dir

    def _done(
        self, key: str, file: str, reason: str, cuda: str | None = None, overridden: bool = False
    ) -> PlatformChoice:
        path = self.ot_dir / file if self.ot_dir is not None else None
        exists = path.is_file() if path is not None else None
        return PlatformChoice(key, file, reason, path, exists, cuda, overridden=overridden)

    def overridden(self, file: str) -> PlatformChoice:
        return self._done(_key_of(file), file, f"OT_PLATFORM_REQUIREMENTS={file}", overridden=True)

    def nvidia(self) -> PlatformChoice | None:
        evidence = _nvidia_evidence(self.probe)
        if evidence is None:
            return None
        header = self.probe.nvidia_smi_cuda_version()
        major = _cuda_major(header.cuda_version)
        has_legacy = self.ot_dir is None or (self.ot_dir / CUDA_LEGACY).is_file()
        if major is None:
            why = header.error or "no CUDA version in its header"
            return self._done("cuda", CUDA, f"NVIDIA GPU ({evidence}); CUDA version unknown ({why})")
        if major >= CUDA_FILE_MIN_MAJOR or not has_legacy:
            suffix = "" if major >= CUDA_FILE_MIN_MAJOR else f"; this checkout has no {CUDA_LEGACY}"
            reason = f"NVIDIA GPU ({evidence}), driver supports CUDA {header.cuda_version}{suffix}"
            return self._done("cuda", CUDA, reason, header.cuda_version)
        reason = f"NVIDIA GPU ({evidence}), driver supports only CUDA {header.cuda_version} (< {CUDA_FILE_MIN_MAJOR})"
        return self._done("cuda-legacy", CUDA_LEGACY, reason, header.cuda_version)

    def rocm(self) -> PlatformChoice | None:
        return self._done("rocm", ROCM, "AMD GPU (/dev/kfd)") if self.probe.system_exists("/dev/kfd") else None

    def cpu(self) -> PlatformChoice:
        return self._done("cpu", DEFAULT, "no NVIDIA or AMD GPU found: no /dev/nvidia0, nvidia-smi or /dev/kfd")


def choose_requirements(probe: Probe, ot_dir: Path | None = None) -> PlatformChoice:
    """The platform requirements file `./install.sh` would install here, with the reason."""
    return _choose(probe, _Launcher(probe, ot_dir))


class _Replayed(_Launcher):
    """A recorded NVIDIA machine (an NVML snapshot): the CUDA version NVML reports stands in for
    nvidia-smi's header, which shows the same number."""

    def __init__(self, probe: Probe, ot_dir: Path | None, cuda_version: str | None) -> None:
        super().__init__(probe, ot_dir)
        self.cuda_version = cuda_version

    def nvidia(self) -> PlatformChoice:
        cuda = self.cuda_version
        major = _cuda_major(cuda)
        if major is None or major >= CUDA_FILE_MIN_MAJOR:
            return self._done("cuda", CUDA, f"NVIDIA GPU, driver supports CUDA {cuda}", cuda)
        reason = f"NVIDIA GPU, driver supports only CUDA {cuda} (< {CUDA_FILE_MIN_MAJOR})"
        return self._done("cuda-legacy", CUDA_LEGACY, reason, cuda)


def choose_requirements_replayed(probe: Probe, ot_dir: Path | None, cuda_version: str | None) -> PlatformChoice:
    """What `./install.sh` would install on a replayed NVIDIA machine whose driver reports CUDA_VERSION."""
    return _choose(probe, _Replayed(probe, ot_dir, cuda_version))


# What otdoctor install does -------------------------------------------------------------------------
def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


class _Install:
    def __init__(self, probe: Probe, gpu: GpuFacts | None) -> None:
        self.probe = probe
        self._gpu = gpu

    @property
    def gpu(self) -> GpuFacts:
        if self._gpu is None:
            self._gpu = detect_gpu(self.probe)
        return self._gpu

    def overridden(self, file: str) -> PlatformChoice:
        return PlatformChoice(_key_of(file), file, "OT_PLATFORM_REQUIREMENTS", overridden=True)

    def nvidia(self) -> PlatformChoice | None:
        gpu = self.gpu
        if not gpu.nvidia:
            return None
        label = ", ".join(gpu.names) or "an NVIDIA GPU"
        if gpu.driver_cuda is not None and gpu.driver_cuda[0] < CUDA_FILE_MIN_MAJOR:
            return self._old_driver(gpu, label, gpu.driver_cuda)
        old_cc = [c for c in gpu.compute_caps if c < CUDA_FILE_MIN_CAPABILITY]
        if old_cc:
            cc = ", ".join(_dotted(c) for c in old_cc)
            reason = (
                f"{label}: compute capability {cc}; CUDA {CUDA_FILE_MIN_MAJOR} builds dropped GPUs below "
                f"{_dotted(CUDA_FILE_MIN_CAPABILITY)}"
            )
            return PlatformChoice("cuda-legacy", CUDA_LEGACY, reason)
        why = label + (f", driver CUDA {_dotted(gpu.driver_cuda)}" if gpu.driver_cuda else "")
        return PlatformChoice("cuda", CUDA, why)

    def _old_driver(self, gpu: GpuFacts, label: str, driver_cuda: tuple[int, int]) -> PlatformChoice:
        drv = f"{gpu.driver_version or 'the driver'} supports CUDA {_dotted(driver_cuda)}"
        if any(c >= BLACKWELL_CAPABILITY for c in gpu.compute_caps):
            blocker = (
                f"{label} (compute capability {_dotted(BLACKWELL_CAPABILITY)}) needs a torch build for CUDA "
                f"{BLACKWELL_MIN_CUDA} or newer, but {drv} and the legacy requirements are CUDA "
                f"{_dotted(LEGACY_FILE_BUILD)}: update the NVIDIA driver to {CUDA_FILE_TOOLKIT_DRIVER} or newer "
                "(sudo ubuntu-drivers install, or NVIDIA's installer), then run again"
            )
            return PlatformChoice("cuda-legacy", CUDA_LEGACY, f"{label}: {drv}", blocker=blocker)
        return PlatformChoice(
            "cuda-legacy",
            CUDA_LEGACY,
            f"{label}: {drv}; the {CUDA_FILE_BUILD_TAG} build needs a driver >= {CUDA_FILE_MIN_DRIVER} "
            f"(CUDA {CUDA_FILE_MIN_MAJOR})",
            warnings=(
                f"updating the NVIDIA driver to {CUDA_FILE_MIN_DRIVER} or newer allows the faster "
                f"CUDA {CUDA_FILE_MIN_MAJOR} build",
            ),
        )

    def rocm(self) -> PlatformChoice | None:
        return PlatformChoice("rocm", ROCM, "/dev/kfd exists (AMD ROCm)") if self.gpu.rocm else None

    def cpu(self) -> PlatformChoice:
        return PlatformChoice("cpu", DEFAULT, "no NVIDIA or AMD GPU found")


def choose_platform(probe: Probe, requested: str = "auto", gpu: GpuFacts | None = None) -> PlatformChoice:
    """The platform file `otdoctor install` installs: `--platform`, else the launcher's order with
    the NVIDIA step refined by the GPUs' generation and the driver."""
    if requested not in PLATFORMS:
        raise UserError(f"unknown --platform {requested!r}; choose one of {', '.join(PLATFORMS)}", exit_code=2)
    if requested != "auto":
        return PlatformChoice(requested, PLATFORM_FILES[requested], f"--platform {requested}")
    return _choose(probe, _Install(probe, gpu))


__all__ = [
    "CUDA",
    "CUDA_FILE_MIN_MAJOR",
    "CUDA_LEGACY",
    "DEFAULT",
    "GLOBAL_REQUIREMENTS",
    "PLATFORMS",
    "PLATFORM_FILES",
    "ROCM",
    "GpuFacts",
    "PlatformChoice",
    "choose_platform",
    "choose_requirements",
    "choose_requirements_replayed",
    "detect_gpu",
]
