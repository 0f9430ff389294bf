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
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from otdoctor.errors import UserError
from otdoctor.probe.commands import CommandResult
from otdoctor.probe.nvidia_smi import read_smi
from otdoctor.probe.nvml_types import (
    CLOCK_EVENT_BITS,
    GpuDevice,
    GpuInfo,
    GpuProcess,
    NvmlProblem,
    problem_from_error,
)

SNAPSHOT_ENV = "OTDOCTOR_NVML_SNAPSHOT"
WSL_NVIDIA_SMI = "/usr/lib/wsl/lib/nvidia-smi"


# Loading -------------------------------------------------------------------------------------
class SnapshotError(UserError):
    """$OTDOCTOR_NVML_SNAPSHOT names a file that cannot be replayed: a usage error for `otdoctor gpu`,
    one finding about that file (`info`) for the checks."""

    def __init__(self, path: str, reason: str, readable: bool) -> None:
        verb = "is not valid" if readable else "cannot be read"
        super().__init__(f"NVML snapshot {path} ({SNAPSHOT_ENV}) {verb}: {reason}", exit_code=2)
        self.path = path

    @property
    def info(self) -> GpuInfo:
        problem = NvmlProblem(
            "snapshot-invalid",
            None,
            self.message,
            f"otdoctor replays this recorded file instead of asking the driver ({SNAPSHOT_ENV} is set), "
            "so it cannot tell anything about the GPUs",
            f"fix the file, or unset {SNAPSHOT_ENV} to read this machine's GPUs",
            (f"unset {SNAPSHOT_ENV}",),
        )
        return GpuInfo("none", problem=problem, snapshot=self.path)


def load_nvml(env: Mapping[str, str]) -> Any:
    """The pynvml module, or a FakeNvml replaying $OTDOCTOR_NVML_SNAPSHOT (SnapshotError if it cannot)."""
    path = env.get(SNAPSHOT_ENV)
    if path:
        from otdoctor.probe.nvml_snapshot import FakeNvml, SnapshotInvalid

        try:
            return FakeNvml.from_file(Path(path))
        except FileNotFoundError:
            raise SnapshotError(path, "no such file", readable=False) from None
        except OSError as exc:  # a folder, a FIFO, a device, a dangling link, no permission
            raise SnapshotError(path, exc.strerror or str(exc), readable=False) from None
        except SnapshotInvalid as exc:
            raise SnapshotError(path, str(exc), readable=True) from None
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
        with suppress(pynvml.NVMLError):
            nvml.nvmlShutdown()


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


# Smoke runs --------------------------------------------------------------------------------------
def _decoded(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_name_and_driver(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(name of GPU 0, driver version), or (None, None) on a machine without one."""
    try:
        nvml = load_nvml(os.environ if env is None else env)
        nvml.nvmlInit()
        try:
            name = nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(0))
            driver = nvml.nvmlSystemGetDriverVersion()
        finally:
            nvml.nvmlShutdown()
        return _decoded(name), _decoded(driver)
    except Exception:
        return None, None


class MemorySampler:
    """An NVML session over every GPU, read again and again during a run; `close()` ends it.

    Raises whatever loading or initialising NVML raises (no driver, no pynvml, a bad snapshot).
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        nvml = load_nvml(env)
        nvml.nvmlInit()
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        self._nvml = nvml

    def device_used_bytes(self) -> int:
        """Memory in use on all GPUs together."""
        return sum(int(self._nvml.nvmlDeviceGetMemoryInfo(h).used) for h in self._handles)

    def processes_used_bytes(self, pids: Collection[int]) -> int | None:
        """Memory the processes `pids` hold on all GPUs; None when NVML names none of them with a size."""
        total = None
        for h in self._handles:
            for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                try:
                    procs = getattr(self._nvml, name)(h)
                except Exception:
                    continue
                for p in procs:
                    mem = getattr(p, "usedGpuMemory", None)
                    if int(p.pid) in pids and mem is not None:
                        total = (total or 0) + int(mem)
        return total

    def close(self) -> None:
        with suppress(Exception):
            self._nvml.nvmlShutdown()


def to_jsonable(info: GpuInfo) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(info)
    data.pop("local_pids", None)
    data["cuda_driver_version_str"] = info.cuda_driver_version_str
    for dev, raw in zip(info.devices, data["devices"], strict=True):
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
    "gpu_name_and_driver",
    "MemorySampler",
    "SnapshotError",
]
