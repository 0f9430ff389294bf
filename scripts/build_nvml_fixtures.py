"""Write the constructed NVML snapshots in tests/data/nvml/ (run by hand; the JSON files are committed).

These machines were NOT recorded on real GPUs (no GPU machine was available when they were made):
each value is built into pynvml's own ctypes structs and friendly objects and encoded exactly as
`scripts/record_nvml.py` encodes a real machine, using documented real facts (product names,
memory totals, driver strings and their CUDA versions, power limits, PCIe generations, compute
capabilities). UUIDs, PCI addresses and PIDs are made up. A recorded snapshot replaces any of them
without code changes.

    .venv/bin/python scripts/build_nvml_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pynvml

from otdoctor.probe.nvml_snapshot import SNAPSHOT_FORMAT, encode

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "nvml"
MIB = 1024 * 1024
NOT_MIG = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId outside MIG
NOTE = "constructed from documented real shapes, not recorded on a GPU (scripts/build_nvml_fixtures.py)"


def value(v: Any) -> dict[str, Any]:
    return {"value": encode(v)}


def error(code: int) -> dict[str, Any]:
    return {"error": code, "name": type(pynvml.NVMLError(code)).__name__}


def proc(pid: int, used_bytes: int | None) -> pynvml.nvmlFriendlyObject:
    return pynvml.nvmlFriendlyObject(
        {"pid": pid, "usedGpuMemory": used_bytes, "gpuInstanceId": NOT_MIG, "computeInstanceId": NOT_MIG}
    )


def device(
    name: str,
    uuid: str,
    bus: str,
    cc: tuple[int, int],
    total_mib: int,
    reserved_mib: int,
    *,
    compute: list[tuple[int, int | None]] = (),
    graphics: list[tuple[int, int | None]] = (),
    other_used_mib: int = 2,
    util: tuple[int, int] = (0, 0),
    temp_c: int = 32,
    power_mw: int = 20000,
    limit_mw: int = 300000,
    pcie: tuple[int, int, int, int] = (1, 4, 16, 16),
    reasons: int = 0x1,
    ecc: int | None = None,
    memory_v2: bool = True,
) -> dict[str, Any]:
    total = total_mib * MIB
    reserved = reserved_mib * MIB
    procs_used = sum(u for _, u in [*compute, *graphics] if u is not None)
    used = procs_used + other_used_mib * MIB
    free = total - reserved - used
    pci = pynvml.nvmlPciInfo_t()
    pci.busIdLegacy = bus[4:].encode()
    pci.busId = bus.encode()
    pci.domain, pci.bus, pci.device = int(bus[:8], 16), int(bus[9:11], 16), int(bus[12:14], 16)
    d: dict[str, Any] = {
        "nvmlDeviceGetName": value(name),
        "nvmlDeviceGetUUID": value(uuid),
        "nvmlDeviceGetPciInfo": value(pci),
        "nvmlDeviceGetCudaComputeCapability": value(cc),
    }
    if memory_v2:
        mem = pynvml.c_nvmlMemory_v2_t()
        mem.version, mem.total, mem.reserved, mem.free, mem.used = pynvml.nvmlMemory_v2, total, reserved, free, used
        d[f"nvmlDeviceGetMemoryInfo(version={pynvml.nvmlMemory_v2})"] = value(mem)
    else:
        d[f"nvmlDeviceGetMemoryInfo(version={pynvml.nvmlMemory_v2})"] = error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mem1 = pynvml.c_nvmlMemory_t()
        mem1.total, mem1.free, mem1.used = total, total - used - reserved, used + reserved
        d["nvmlDeviceGetMemoryInfo"] = value(mem1)
    u = pynvml.c_nvmlUtilization_t()
    u.gpu, u.memory = util
    d["nvmlDeviceGetUtilizationRates"] = value(u)
    d["nvmlDeviceGetCurrentClocksEventReasons"] = value(reasons)
    d["nvmlDeviceGetComputeRunningProcesses"] = value([proc(p, m) for p, m in compute])
    d["nvmlDeviceGetGraphicsRunningProcesses"] = value([proc(p, m) for p, m in graphics])
    d[f"nvmlDeviceGetTemperature({pynvml.NVML_TEMPERATURE_GPU})"] = value(temp_c)
    d["nvmlDeviceGetPowerUsage"] = value(power_mw)
    d["nvmlDeviceGetEnforcedPowerLimit"] = value(limit_mw)
    d["nvmlDeviceGetCurrPcieLinkGeneration"] = value(pcie[0])
    d["nvmlDeviceGetMaxPcieLinkGeneration"] = value(pcie[1])
    d["nvmlDeviceGetCurrPcieLinkWidth"] = value(pcie[2])
    d["nvmlDeviceGetMaxPcieLinkWidth"] = value(pcie[3])
    key = f"nvmlDeviceGetTotalEccErrors({pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED},{pynvml.NVML_VOLATILE_ECC})"
    d[key] = error(pynvml.NVML_ERROR_NOT_SUPPORTED) if ecc is None else value(ecc)
    return d


def snapshot(
    description: str,
    driver: str | None,
    cuda: int | None,
    devices: list[dict[str, Any]],
    host: dict[str, Any],
    init_error: int | None = None,
) -> dict[str, Any]:
    system: dict[str, Any] = {}
    if init_error is not None:
        system["nvmlInit"] = error(init_error)
    else:
        system["nvmlSystemGetDriverVersion"] = value(driver)
        system["nvmlSystemGetCudaDriverVersion_v2"] = value(cuda)
        system["nvmlDeviceGetCount"] = value(len(devices))
        for i in range(len(devices)):
            system[f"nvmlDeviceGetHandleByIndex({i})"] = value(i)
    return {
        "format": SNAPSHOT_FORMAT,
        "recorded": {"description": description, "note": NOTE, "pynvml": "nvidia-ml-py 13.615.71"},
        "host": host,
        "system": system,
        "devices": devices,
    }


LINUX = {"wsl": False, "container": None, "dev_nvidia0": True}

MACHINES: dict[str, dict[str, Any]] = {
    "h100-idle": snapshot(
        "idle H100 SXM5 on a Linux server, driver 580.159.04 (CUDA 13.0)",
        "580.159.04",
        13000,
        [
            device(
                "NVIDIA H100 80GB HBM3",
                "GPU-5f2c1e9a-8b7d-4c3e-9a1f-2d6b8e4c7a10",
                "00000000:18:00.0",
                (9, 0),
                81559,
                554,
                other_used_mib=0,
                temp_c=31,
                power_mw=69123,
                limit_mw=700000,
                pcie=(5, 5, 16, 16),
                reasons=0x1,
                ecc=0,
            )
        ],
        {**LINUX, "nvidia_pci_devices": ["0000:18:00.0"]},
    ),
    "rtx4090-desktop": snapshot(
        "RTX 4090 desktop (Ubuntu 24.04, driver 570.133.07 / CUDA 12.8): Xorg, GNOME Shell and Firefox "
        "draw on it and a forgotten ComfyUI holds 14 GiB",
        "570.133.07",
        12080,
        [
            device(
                "NVIDIA GeForce RTX 4090",
                "GPU-1b7e3c55-0d2a-4f68-b9e4-7c3a91d0e2f4",
                "00000000:01:00.0",
                (8, 9),
                24564,
                404,
                compute=[(98345, 14540 * MIB)],
                graphics=[(41523, 1186 * MIB), (42011, 214 * MIB), (74721, 431 * MIB)],
                other_used_mib=10,
                util=(4, 2),
                temp_c=44,
                power_mw=31247,
                limit_mw=450000,
                pcie=(1, 4, 16, 16),
                reasons=0x1,
            )
        ],
        {**LINUX, "nvidia_pci_devices": ["0000:01:00.0"]},
    ),
    "rtx5090-driver575": snapshot(
        "RTX 5090 (Blackwell, compute capability 12.0) on driver 575.64.03 (CUDA 12.9); its venv has a cu126 torch",
        "575.64.03",
        12090,
        [
            device(
                "NVIDIA GeForce RTX 5090",
                "GPU-9d04be12-6a3f-4e2b-8c71-e5f0a2b3c4d5",
                "00000000:01:00.0",
                (12, 0),
                32607,
                488,
                graphics=[(41877, 312 * MIB)],
                temp_c=36,
                power_mw=27512,
                limit_mw=575000,
                pcie=(1, 5, 16, 16),
                reasons=0x1,
            )
        ],
        {**LINUX, "nvidia_pci_devices": ["0000:01:00.0"]},
    ),
    "gtx1080-driver580": snapshot(
        "GTX 1080 (Pascal, compute capability 6.1) on driver 580.95.05 (CUDA 13.0); its venv has a cu130 torch",
        "580.95.05",
        13000,
        [
            device(
                "NVIDIA GeForce GTX 1080",
                "GPU-3c8a7f10-2e4d-4b91-a6c5-0f1e2d3c4b5a",
                "00000000:02:00.0",
                (6, 1),
                8192,
                0,
                graphics=[(40996, 148 * MIB)],
                other_used_mib=6,
                temp_c=41,
                power_mw=9870,
                limit_mw=180000,
                pcie=(3, 3, 8, 16),
                reasons=0x1,
            )
        ],
        {**LINUX, "nvidia_pci_devices": ["0000:02:00.0"]},
    ),
    "wsl-rtx3060": snapshot(
        "RTX 3060 12 GB under WSL2 (Windows driver 576.02, CUDA 12.9): per-process memory is not available "
        "(WDDM) and memory info v2 is not supported",
        "576.02",
        12090,
        [
            device(
                "NVIDIA GeForce RTX 3060",
                "GPU-7e21f0aa-4c9b-4d3e-8f12-a0b1c2d3e4f5",
                "00000000:01:00.0",
                (8, 6),
                12288,
                0,
                compute=[(51234, None)],
                other_used_mib=1650,
                util=(7, 5),
                temp_c=47,
                power_mw=24310,
                limit_mw=170000,
                pcie=(4, 4, 16, 16),
                reasons=0x0,
                memory_v2=False,
            )
        ],
        {"wsl": True, "container": None, "dev_nvidia0": False, "nvidia_pci_devices": []},
    ),
    "container-a100": snapshot(
        "A100 80GB in a Docker container started with --gpus all but without --pid=host: NVML reports the "
        "host's PIDs, which the container cannot see",
        "550.127.05",
        12040,
        [
            device(
                "NVIDIA A100-SXM4-80GB",
                "GPU-b2e4c6a8-1d3f-4a5b-9c7e-8f0a1b2c3d4e",
                "00000000:07:00.0",
                (8, 0),
                81920,
                578,
                compute=[(1873421, 38912 * MIB), (1874090, 39424 * MIB)],
                other_used_mib=0,
                util=(97, 61),
                temp_c=63,
                power_mw=312480,
                limit_mw=400000,
                pcie=(4, 4, 16, 16),
                reasons=0x0,
                ecc=0,
            )
        ],
        {"wsl": False, "container": "docker", "dev_nvidia0": True, "nvidia_pci_devices": ["0000:07:00.0"]},
    ),
    "driver-mismatch": snapshot(
        "driver upgraded from 570 to 580 without a reboot: NVML's library and the kernel module differ",
        None,
        None,
        [],
        {**LINUX, "nvidia_pci_devices": ["0000:01:00.0"]},
        init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    ),
    "no-driver": snapshot(
        "an RTX 3090 on the PCI bus but no NVIDIA driver installed (libnvidia-ml.so.1 missing)",
        None,
        None,
        [],
        {"wsl": False, "container": None, "dev_nvidia0": False, "nvidia_pci_devices": ["0000:2b:00.0"]},
        init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    ),
    "no-gpu": snapshot(
        "a laptop with Intel graphics only: no NVIDIA device and no driver",
        None,
        None,
        [],
        {"wsl": False, "container": None, "dev_nvidia0": False, "nvidia_pci_devices": []},
        init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND,
    ),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, snap in MACHINES.items():
        (OUT / f"{name}.json").write_text(json.dumps(snap, indent=1) + "\n", encoding="utf-8")
        print(OUT / f"{name}.json")


if __name__ == "__main__":
    main()
