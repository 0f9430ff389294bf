"""The NVIDIA GPUs as NVML sees them: a thin adapter over `pynvml` (package nvidia-ml-py).

`read_gpu()` replaces `nvidia-smi` plus `nvidia-smi --query-compute-apps=...`: driver version, the
highest CUDA the driver supports, each GPU (memory, utilisation, temperature, power, PCIe link,
clock-event reasons, ECC) and the processes holding its memory. It returns plain dataclasses and
never raises for a machine state: an NVML failure becomes an `NvmlProblem` that says what it means
for the user. Where NVML cannot be loaded but `nvidia-smi` runs (WSL keeps it in /usr/lib/wsl/lib),
the GPU table comes from `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`.

`OTDOCTOR_NVML_SNAPSHOT=/path/snapshot.json` replays a recorded machine (see `nvml_snapshot`);
the adapter code runs unchanged against it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.errors import UserError
from otdoctor.probe.commands import CommandResult

SNAPSHOT_ENV = "OTDOCTOR_NVML_SNAPSHOT"
WSL_NVIDIA_SMI = "/usr/lib/wsl/lib/nvidia-smi"

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


# Loading -------------------------------------------------------------------------------------
def load_nvml(env: Mapping[str, str]) -> Any:
    """The pynvml module, or a FakeNvml replaying $OTDOCTOR_NVML_SNAPSHOT."""
    path = env.get(SNAPSHOT_ENV)
    if path:
        from otdoctor.probe.nvml_snapshot import FakeNvml

        try:
            return FakeNvml.from_file(Path(path))
        except FileNotFoundError:
            raise UserError(f"{SNAPSHOT_ENV}: no such file: {path}", exit_code=2) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{SNAPSHOT_ENV}: cannot read {path}: {exc}", exit_code=2) from None
        except OSError as exc:  # a folder, a dangling link, no permission
            raise UserError(f"{SNAPSHOT_ENV}: cannot read {path}: {exc.strerror or exc}", exit_code=2) from None
    import pynvml

    return pynvml


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _maybe(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A value NVML may not have on every GPU (ECC on GeForce, power on some laptops): None then."""
    import pynvml

    try:
        return fn(*args, **kwargs)
    except pynvml.NVMLError:
        return None


def _memory(nvml: Any, handle: Any) -> tuple[int | None, int | None, int | None, int | None]:
    """total, free, used, reserved. v2 separates the driver's reservation from `used`."""
    import pynvml

    try:
        m = nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
        return int(m.total), int(m.free), int(m.used), int(m.reserved)
    except pynvml.NVMLError:
        m = _maybe(nvml.nvmlDeviceGetMemoryInfo, handle)
        if m is None:
            return None, None, None, None
        return int(m.total), int(m.free), int(m.used), None


def _processes(nvml: Any, handle: Any, index: int, uuid: str) -> tuple[tuple[GpuProcess, ...], str | None]:
    import pynvml

    found: list[GpuProcess] = []
    errors: list[str] = []
    for kind, name in (
        ("compute", "nvmlDeviceGetComputeRunningProcesses"),
        ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
    ):
        try:
            procs = getattr(nvml, name)(handle)
        except (pynvml.NVMLError, pynvml.NVMLLibraryMismatchError) as exc:
            errors.append(f"{kind}: {exc}")
            continue
        for p in procs:
            used = getattr(p, "usedGpuMemory", None)
            found.append(GpuProcess(int(p.pid), kind, None if used is None else int(used), index, uuid))
    return tuple(found), ("; ".join(errors) or None)


def _device(nvml: Any, index: int) -> GpuDevice:
    import pynvml

    h = nvml.nvmlDeviceGetHandleByIndex(index)
    name = _text(nvml.nvmlDeviceGetName(h))
    uuid = _text(nvml.nvmlDeviceGetUUID(h))
    pci = _maybe(nvml.nvmlDeviceGetPciInfo, h)
    cc = _maybe(nvml.nvmlDeviceGetCudaComputeCapability, h)
    total, free, used, reserved = _memory(nvml, h)
    util = _maybe(nvml.nvmlDeviceGetUtilizationRates, h)
    reasons = _maybe(nvml.nvmlDeviceGetCurrentClocksEventReasons, h)
    if reasons is None:  # drivers before 535 only have the old name
        reasons = _maybe(nvml.nvmlDeviceGetCurrentClocksThrottleReasons, h)
    procs, procs_error = _processes(nvml, h, index, uuid)
    return GpuDevice(
        index=index,
        name=name,
        uuid=uuid,
        pci_bus_id=_text(pci.busId) if pci is not None else None,
        compute_capability=(int(cc[0]), int(cc[1])) if cc else None,
        memory_total_bytes=total,
        memory_free_bytes=free,
        memory_used_bytes=used,
        memory_reserved_bytes=reserved,
        utilization_gpu_pct=int(util.gpu) if util is not None else None,
        utilization_memory_pct=int(util.memory) if util is not None else None,
        temperature_c=_maybe(nvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU),
        power_mw=_maybe(nvml.nvmlDeviceGetPowerUsage, h),
        power_limit_mw=_maybe(nvml.nvmlDeviceGetEnforcedPowerLimit, h),
        pcie_gen_current=_maybe(nvml.nvmlDeviceGetCurrPcieLinkGeneration, h),
        pcie_gen_max=_maybe(nvml.nvmlDeviceGetMaxPcieLinkGeneration, h),
        pcie_width_current=_maybe(nvml.nvmlDeviceGetCurrPcieLinkWidth, h),
        pcie_width_max=_maybe(nvml.nvmlDeviceGetMaxPcieLinkWidth, h),
        clock_event_reasons=reasons,
        ecc_uncorrected_errors=_maybe(
            nvml.nvmlDeviceGetTotalEccErrors, h, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC
        ),
        processes=procs,
        processes_error=procs_error,
    )


def read_nvml(nvml: Any) -> tuple[str | None, int | None, tuple[GpuDevice, ...], tuple[str, ...], NvmlProblem | None]:
    """driver version, CUDA driver version, devices, per-device problems, or the NVML problem."""
    import pynvml

    try:
        nvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return None, None, (), (), problem_from_error(exc)
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = _maybe(nvml.nvmlSystemGetCudaDriverVersion_v2)
        count = int(nvml.nvmlDeviceGetCount())
        devices: list[GpuDevice] = []
        problems: list[str] = []
        for i in range(count):
            try:
                devices.append(_device(nvml, i))
            except pynvml.NVMLError as exc:  # one lost GPU must not hide the others
                p = problem_from_error(exc)
                problems.append(f"GPU {i}: {p.message}: {p.meaning}")
        return driver, cuda, tuple(devices), tuple(problems), None
    except pynvml.NVMLError as exc:
        return None, None, (), (), problem_from_error(exc)
    finally:
        try:
            nvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


# nvidia-smi fallback ---------------------------------------------------------------------------
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
    import re

    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header)
    return int(m.group(1)) * 1000 + int(m.group(2)) * 10 if m else None


def read_smi(
    smi: str, run: Callable[[Sequence[str]], CommandResult]
) -> tuple[str | None, int | None, tuple[GpuDevice, ...]] | None:
    """`nvidia-smi --query-gpu=... --format=csv,noheader,nounits`; None when it fails too."""
    res = run([smi, "--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits"])
    if not res.ok:
        return None
    apps = run([smi, "--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader,nounits"])
    by_uuid: dict[str, list[tuple[int, int | None]]] = {}
    if apps.ok:
        for line in apps.stdout.splitlines():
            cols = [c.strip() for c in line.split(",")]
            if len(cols) >= 3 and cols[0].isdigit():
                by_uuid.setdefault(cols[2], []).append((int(cols[0]), _smi_int(cols[1], MIB)))
    driver = None
    devices: list[GpuDevice] = []
    for line in res.stdout.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) != len(SMI_FIELDS):
            continue
        v = dict(zip(SMI_FIELDS, cols))
        driver = v["driver_version"]
        cc = v["compute_cap"].split(".")
        index = int(v["index"])
        procs = tuple(GpuProcess(pid, "compute", used, index, v["uuid"]) for pid, used in by_uuid.get(v["uuid"], []))
        devices.append(
            GpuDevice(
                index=index,
                name=v["name"],
                uuid=v["uuid"],
                pci_bus_id=v["pci.bus_id"],
                compute_capability=(int(cc[0]), int(cc[1])) if len(cc) == 2 and all(c.isdigit() for c in cc) else None,
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
        )
    header = run([smi])
    cuda = parse_smi_cuda_version(header.stdout) if header.ok else None
    return driver, cuda, tuple(devices)


# Host facts ------------------------------------------------------------------------------------
def nvidia_pci_devices(sys_root: Path = Path("/sys")) -> tuple[str, ...]:
    """NVIDIA (vendor 0x10de) display controllers (class 0x03xxxx) on the PCI bus: `lspci -d 10de::03xx`."""
    found = []
    base = sys_root / "bus" / "pci" / "devices"
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return ()
    for dev in entries:
        try:
            vendor = (dev / "vendor").read_text().strip().lower()
            klass = (dev / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor == "0x10de" and klass.startswith("0x03"):
            found.append(dev.name)
    return tuple(found)


def read_gpu(
    env: Mapping[str, str],
    run: Callable[[Sequence[str]], CommandResult],
    which: Callable[[str], str | None],
) -> GpuInfo:
    """Everything the GPU checks need, in one pass (memoised per run by the checks)."""
    from otdoctor.probe import host

    nvml = load_nvml(env)
    snapshot = env.get(SNAPSHOT_ENV) or None
    if snapshot:  # a replayed machine: its host facts come from the snapshot, not from this one
        hf = nvml.host
        pci = tuple(hf.get("nvidia_pci_devices", ()))
        dev0 = bool(hf.get("dev_nvidia0", False))
        container = hf.get("container")
        wsl = bool(hf.get("wsl", False))
        local_pids = nvml.local_pids()
    else:
        plat = host.platform_info()
        pci = nvidia_pci_devices()
        dev0 = os.path.exists("/dev/nvidia0")
        container, wsl = plat.container, plat.wsl
        local_pids = None
    common: dict[str, Any] = dict(
        snapshot=snapshot,
        nvidia_pci_devices=pci,
        dev_nvidia0=dev0,
        container=container,
        wsl=wsl,
        cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
        cuda_device_order=env.get("CUDA_DEVICE_ORDER"),
        local_pids=local_pids,
    )
    driver, cuda, devices, dev_problems, problem = read_nvml(nvml)
    smi = which("nvidia-smi") or (WSL_NVIDIA_SMI if os.path.exists(WSL_NVIDIA_SMI) else None)
    if problem is None:
        return GpuInfo("nvml", driver, cuda, devices, None, nvidia_smi=smi, device_problems=dev_problems, **common)
    if smi and problem.kind in ("library-not-found", "function-not-found", "unknown"):
        got = read_smi(smi, run)
        if got is not None and got[2]:
            driver, cuda, devices = got
            return GpuInfo("nvidia-smi", driver, cuda, devices, problem, nvidia_smi=smi, **common)
    return GpuInfo("none", problem=problem, nvidia_smi=smi, **common)


def to_jsonable(info: GpuInfo) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(info)
    data.pop("local_pids", None)
    data["cuda_driver_version_str"] = info.cuda_driver_version_str
    for dev, raw in zip(info.devices, data["devices"]):
        raw["clock_events"] = list(dev.clock_events)
        raw["compute_capability"] = dev.compute_capability_str
    return data


__all__ = [
    "GpuDevice",
    "GpuInfo",
    "GpuProcess",
    "NvmlProblem",
    "read_gpu",
    "load_nvml",
    "read_nvml",
    "read_smi",
    "problem_from_error",
    "nvidia_pci_devices",
    "to_jsonable",
    "SNAPSHOT_ENV",
    "CLOCK_EVENT_BITS",
]
