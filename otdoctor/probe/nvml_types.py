"""What NVML reports, as plain frozen dataclasses, and what its error codes mean for the user.

Filled by `otdoctor.probe.nvml` (or its nvidia-smi fallback); read by the GPU checks and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

# NVML error codes (nvml.h) -> (kind, what it means for the user, fix summary, fix commands).
_PROBLEMS: dict[int, tuple[str, str, str, tuple[str, ...]]] = {
    12: (
        "library-not-found",
        "libnvidia-ml.so.1 is not installed: no NVIDIA driver on this machine (in a container: it was "
        "started without the NVIDIA Container Toolkit, e.g. without `--gpus all`)",
        "install the NVIDIA driver (580 or newer for CUDA 13), or start the container with GPU access",
        ("sudo ubuntu-drivers install", "docker run --gpus all ..."),
    ),
    9: (
        "driver-not-loaded",
        "the NVIDIA driver is installed but its kernel module is not loaded (Secure Boot refusing an "
        "unsigned module, or a kernel update the DKMS module was not built for)",
        "load the module and look at why it failed",
        ("sudo modprobe nvidia", "sudo dmesg | grep -i nvidia", "dkms status"),
    ),
    18: (
        "version-mismatch",
        "the driver's user-space library and the loaded kernel module are different versions: the "
        "driver was upgraded and the old module is still running",
        "reboot, so the new kernel module is loaded",
        ("sudo reboot",),
    ),
    4: (
        "no-permission",
        "this user may not open /dev/nvidia* (not in the group that owns the device files, or a "
        "container started without the GPU devices)",
        "give this user access to the GPU device files",
        ("ls -l /dev/nvidia*", "sudo usermod -aG video $USER   # then log out and in"),
    ),
    3: (
        "not-supported",
        "the driver does not support this query on this GPU",
        "update the NVIDIA driver",
        ("nvidia-smi",),
    ),
    15: (
        "gpu-lost",
        "the GPU fell off the bus (Xid 79): power, riser cable or overheating",
        "reboot; if it repeats, check the power supply, the PCIe slot and cooling",
        ("sudo dmesg | grep -i xid", "sudo reboot"),
    ),
    13: (
        "function-not-found",
        "the installed driver is older than the NVML functions otdoctor asks for",
        "update the NVIDIA driver",
        ("nvidia-smi",),
    ),
}

# Clock-event (throttle) reason bits, nvml.h `nvmlClocksEventReason*`.
CLOCK_EVENT_BITS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


@dataclass(frozen=True)
class NvmlProblem:
    kind: str  # library-not-found, driver-not-loaded, version-mismatch, no-permission, not-supported, ...
    code: int | None
    message: str  # NVML's own words
    meaning: str
    fix_summary: str
    fix_commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    kind: str  # "compute" or "graphics"
    used_memory_bytes: int | None  # None: NVML cannot tell (Windows WDDM, WSL), not zero
    gpu_index: int
    gpu_uuid: str


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    uuid: str
    pci_bus_id: str | None
    compute_capability: tuple[int, int] | None
    memory_total_bytes: int | None
    memory_free_bytes: int | None
    memory_used_bytes: int | None
    memory_reserved_bytes: int | None = None
    utilization_gpu_pct: int | None = None
    utilization_memory_pct: int | None = None
    temperature_c: int | None = None
    power_mw: int | None = None
    power_limit_mw: int | None = None
    pcie_gen_current: int | None = None
    pcie_gen_max: int | None = None
    pcie_width_current: int | None = None
    pcie_width_max: int | None = None
    clock_event_reasons: int | None = None
    ecc_uncorrected_errors: int | None = None  # None: no ECC on this GPU (GeForce) or not reported
    processes: tuple[GpuProcess, ...] = ()
    processes_error: str | None = None  # why the process list is missing

    @property
    def clock_events(self) -> tuple[str, ...]:
        if not self.clock_event_reasons:
            return ()
        return tuple(name for bit, name in CLOCK_EVENT_BITS.items() if self.clock_event_reasons & bit)

    @property
    def compute_capability_str(self) -> str | None:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}" if self.compute_capability else None


@dataclass(frozen=True)
class GpuInfo:
    source: str  # "nvml", "nvidia-smi", or "none"
    driver_version: str | None = None
    cuda_driver_version: int | None = None  # 1000*major + 10*minor, as NVML gives it (13000 = 13.0)
    devices: tuple[GpuDevice, ...] = ()
    problem: NvmlProblem | None = None
    snapshot: str | None = None  # the replayed snapshot, when OTDOCTOR_NVML_SNAPSHOT is set
    nvidia_smi: str | None = None
    nvidia_pci_devices: tuple[str, ...] = ()  # NVIDIA display controllers on the PCI bus (sysfs)
    dev_nvidia0: bool = False
    container: str | None = None
    wsl: bool = False
    cuda_visible_devices: str | None = None
    cuda_device_order: str | None = None
    device_problems: tuple[str, ...] = ()
    # Replayed snapshots: the PIDs that are processes of this machine (tests, demos). Any other PID
    # ran on the recorded machine and must never be looked up, let alone stopped, here.
    local_pids: frozenset[int] | None = None

    def is_local_pid(self, pid: int) -> bool:
        return self.local_pids is None or pid in self.local_pids

    @property
    def cuda_driver_version_str(self) -> str | None:
        v = self.cuda_driver_version
        return f"{v // 1000}.{(v % 1000) // 10}" if v else None

    @property
    def nvidia_hardware(self) -> bool:
        """Is there an NVIDIA GPU, working or not? (No: the GPU checks are skipped.)"""
        if self.devices or self.nvidia_pci_devices or self.dev_nvidia0:
            return True
        return bool(self.problem and self.problem.kind not in ("library-not-found",))


def problem_from_error(exc: BaseException) -> NvmlProblem:
    code = getattr(exc, "value", None)
    message = str(exc) if code is not None else f"{type(exc).__name__}: {exc}"
    if isinstance(code, int) and code in _PROBLEMS:
        kind, meaning, summary, commands = _PROBLEMS[code]
        return NvmlProblem(kind, code, message, meaning, summary, commands)
    return NvmlProblem(
        "unknown",
        code if isinstance(code, int) else None,
        message,
        "NVML, the library behind nvidia-smi, failed",
        "run nvidia-smi and read its error; reinstalling the driver or a reboot usually helps",
        ("nvidia-smi",),
    )
