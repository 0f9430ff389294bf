"""GPU reasoning shared by the GPU checks and `otdoctor gpu`: which GPUs CUDA will see, which one
OneTrainer trains on, whether a torch build can run on them, how much VRAM a plan needs, and who
holds the VRAM. Pure functions over the probe's values plus the tables in `otdoctor/data/`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otdoctor.data import data_file, load_table
from otdoctor.probe.nvml import GpuDevice, GpuInfo, GpuProcess
from otdoctor.probe.processes import ProcessDetails

GIB = 1024**3


# Which GPUs CUDA sees ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Visibility:
    devices: tuple[GpuDevice, ...]  # in CUDA's order as far as it can be known
    notes: tuple[str, ...] = ()  # what CUDA_VISIBLE_DEVICES did
    problems: tuple[str, ...] = ()  # entries that hide GPUs by mistake
    order_warning: str | None = None


def visible_devices(info: GpuInfo) -> Visibility:
    """Apply CUDA_VISIBLE_DEVICES as the CUDA runtime does (NVML itself ignores it).

    Entries are indices or (prefixes of) GPU UUIDs; CUDA stops at the first entry that matches no
    GPU, so everything after a typo is hidden too.
    """
    devices = list(info.devices)
    raw = info.cuda_visible_devices
    order_pci = (info.cuda_device_order or "").strip().upper() == "PCI_BUS_ID"
    if raw is None:
        return Visibility(_cuda_order(devices, order_pci), order_warning=None)
    entries = [e.strip() for e in raw.split(",")] if raw.strip() else []
    chosen, problems = _apply_entries(entries, devices)
    if not entries:
        problems.append("CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPU at all")
    order_warning = None
    if len(info.devices) > 1 and not order_pci and any(e.isdigit() for e in entries):
        order_warning = (
            "CUDA_VISIBLE_DEVICES uses indices but CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA numbers the "
            "fastest GPU 0, nvidia-smi numbers by PCI bus, so the index may pick a different GPU"
        )
    seen = ", ".join(f"GPU {d.index} ({d.name})" for d in chosen) or "no GPU"
    notes = (f"CUDA_VISIBLE_DEVICES={raw}: CUDA sees {seen}",)
    return Visibility(tuple(chosen), notes, tuple(problems), order_warning)


def _cuda_order(devices: list[GpuDevice], order_pci: bool) -> tuple[GpuDevice, ...]:
    """The GPUs in CUDA's numbering: without PCI_BUS_ID, CUDA numbers the fastest GPU 0, while
    nvidia-smi numbers by bus."""
    if len(devices) > 1 and not order_pci:
        return tuple(
            sorted(devices, key=lambda d: (d.compute_capability or (0, 0), d.memory_total_bytes or 0), reverse=True)
        )
    return tuple(devices)


def _match_entry(entry: str, devices: list[GpuDevice]) -> GpuDevice | None:
    """The GPU one CUDA_VISIBLE_DEVICES entry names: an index, or a GPU-UUID prefix naming exactly one."""
    if entry.lstrip("-").isdigit():
        n = int(entry)
        return devices[n] if 0 <= n < len(devices) else None
    if entry.startswith("GPU-"):
        hits = [d for d in devices if d.uuid.startswith(entry)]
        return hits[0] if len(hits) == 1 else None
    return None


def _apply_entries(entries: list[str], devices: list[GpuDevice]) -> tuple[list[GpuDevice], list[str]]:
    """(the GPUs the entries make visible, in their order; the entry that hides the rest, if any)."""
    chosen: list[GpuDevice] = []
    for position, entry in enumerate(entries):
        match = _match_entry(entry, devices)
        if match is None:
            rest = entries[position:]
            return chosen, [
                f"CUDA_VISIBLE_DEVICES entry {entry!r} matches no GPU, so CUDA hides it and everything after it "
                f"({', '.join(rest)})"
            ]
        if match not in chosen:
            chosen.append(match)
    return chosen, []


def training_device(info: GpuInfo, train_device: str = "cuda") -> GpuDevice | None:
    """The GPU OneTrainer's `train_device` ("cuda" = "cuda:0") lands on."""
    vis = visible_devices(info).devices
    index = 0
    if ":" in train_device:
        try:
            index = int(train_device.split(":", 1)[1])
        except ValueError:
            index = 0
    return vis[index] if 0 <= index < len(vis) else None


# CUDA builds, drivers and architectures --------------------------------------------------------
def build_tag(torch_version: str | None, cuda: str | None) -> str | None:
    """'2.12.0+cu130' or cuda '13.0' -> 'cu130'."""
    if torch_version and "+cu" in torch_version:
        return "cu" + torch_version.split("+cu", 1)[1].split(".")[0]
    if cuda:
        parts = cuda.split(".")
        return f"cu{parts[0]}{parts[1] if len(parts) > 1 else '0'}"
    return None


def tag_cuda(tag: str) -> tuple[int, int]:
    """'cu126' -> (12, 6); 'cu130' -> (13, 0); 'cu118' -> (11, 8)."""
    digits = tag[2:]
    return int(digits[:-1]), int(digits[-1])


def default_arch_list(tag: str | None) -> list[str] | None:
    if tag is None:
        return None
    return list(load_table("cuda_drivers.toml")["arch_list"].get(tag, [])) or None


def arch_supports(arch_list: list[str], cc: tuple[int, int]) -> bool:
    """A cubin sm_XY runs on X.Z for Z >= Y; PTX compute_XY is JIT-compiled for any newer GPU.

    Architecture-specific targets (sm_90a, sm_100a) are not portable and are left out.
    """
    major, minor = cc
    for arch in arch_list:
        kind, _, num = arch.partition("_")
        if not num.isdigit():
            continue
        a_major, a_minor = int(num[:-1]), int(num[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def min_driver(tag: str, windows: bool) -> tuple[str | None, str | None]:
    """(driver for the full toolkit, driver through minor-version compatibility)."""
    table = load_table("cuda_drivers.toml")
    os_key = "windows" if windows else "linux"
    major, minor = tag_cuda(tag)
    full = table["toolkit_min_driver"][os_key].get(f"{major}.{minor}")
    compat = table["minor_compat_min_driver"][os_key].get(str(major))
    return full, compat


# VRAM plans ------------------------------------------------------------------------------------
GUIDE_CONFIG = "smoke_guide_sdxl.json"  # the guide's SDXL full fine-tune settings


@dataclass(frozen=True)
class Plan:
    id: str  # "config" (the user's), "guide-sdxl" (the guide's settings) or "unknown" (no model)
    title: str
    need_vram_bytes: int | None  # the predicted peak of one training step
    source: str  # "default", or the config path
    raw: Mapping[str, Any] | None = None  # the settings the prediction is of
    components: tuple[Any, ...] = ()  # otdoctor.vram.model.Component


def plan_for(raw: Mapping[str, Any] | None, source: str) -> Plan:
    """The predicted peak VRAM of the config RAW (None: the guide's SDXL fine-tune), or a Plan
    without a figure naming why there is none (a model type otdoctor has no memory model for)."""
    from otdoctor.errors import UserError
    from otdoctor.vram.model import predict
    from otdoctor.vram.settings import read_settings

    plan_id = "config"
    if raw is None:
        raw, plan_id = json.loads(data_file(GUIDE_CONFIG).read_text(encoding="utf-8")), "guide-sdxl"
    try:
        settings = read_settings(raw)
        prediction = predict(settings)
    except UserError as exc:
        return Plan("unknown", f"no VRAM figure: {exc.message}", None, source)
    return Plan(plan_id, plan_title(settings), prediction.peak_bytes, source, raw, prediction.components)


def plan_title(settings: Any) -> str:
    """'SDXL 1.0 FINE_TUNE at 1024 px, batch 1, ADAFACTOR with fused back pass'."""
    from otdoctor.vram.settings import table

    label = load_table("vram_parts.toml")["family"][settings.family]["label"]
    side = int(settings.latent_pixels**0.5) * int(table()["overhead"]["latent_factor"])
    fused = " with fused back pass" if settings.fused_back_pass else ""
    return f"{label} {settings.method} at {side} px, batch {settings.batch_size}, {settings.optimizer}{fused}"


# Who holds the VRAM ----------------------------------------------------------------------------
@dataclass(frozen=True)
class HolderRow:
    process: GpuProcess
    details: ProcessDetails

    @property
    def visible(self) -> bool:
        return self.details.visible

    def as_dict(self) -> dict[str, Any]:
        d = self.details
        return {
            "pid": self.process.pid,
            "gpu_index": self.process.gpu_index,
            "kind": self.process.kind,
            "used_memory_bytes": self.process.used_memory_bytes,
            "visible": d.visible,
            "user": d.user,
            "name": d.name,
            "cmdline": list(d.cmdline),
            "owned_by_current_user": d.owned_by_current_user,
        }


def holders(info: GpuInfo, describe: Any, device: GpuDevice | None = None) -> list[HolderRow]:
    """Processes holding VRAM (on one GPU, or all), largest first; unknown sizes last."""
    devices = [device] if device is not None else list(info.devices)
    rows = [
        HolderRow(p, describe(p.pid) if info.is_local_pid(p.pid) else ProcessDetails(p.pid, False))
        for d in devices
        for p in d.processes
    ]
    rows.sort(key=lambda r: (r.process.used_memory_bytes is None, -(r.process.used_memory_bytes or 0)))
    return rows


def invisible_explanation(info: GpuInfo) -> str:
    if info.container:
        return (
            f"NVML reports PIDs of the host, and this {info.container} container has its own PID namespace: "
            "start the container with --pid=host to see (and stop) them here, or run nvidia-smi on the host"
        )
    if info.snapshot:
        return f"'not visible here': those PIDs ran on the machine recorded in {info.snapshot}, not on this one"
    return "no such process here: it has exited since, or it lives in another PID namespace (a container)"
