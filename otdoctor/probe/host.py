"""Facts about the host: disks, filesystems, memory, OS, containers."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class DiskUsage:
    path: str  # the existing folder that was measured (the nearest existing parent)
    total_bytes: int
    free_bytes: int
    mountpoint: str | None
    fstype: str | None
    device: str | None


@dataclass(frozen=True)
class MemoryInfo:
    total_bytes: int
    available_bytes: int
    swap_total_bytes: int


@dataclass(frozen=True)
class PlatformInfo:
    system: str  # Linux, Darwin, Windows
    release: str
    machine: str  # x86_64, aarch64, arm64, AMD64
    distro: str | None  # PRETTY_NAME from /etc/os-release
    wsl: bool
    container: str | None  # "docker", "podman", "kubernetes"... or None


def nearest_existing(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_usage(path: Path) -> DiskUsage | None:
    """`df PATH`, for a path that may not exist yet (measured at its nearest existing parent)."""
    existing = nearest_existing(path)
    try:
        usage = shutil.disk_usage(existing)
    except OSError:
        return None
    part = mount_of(existing)
    return DiskUsage(
        path=str(existing),
        total_bytes=usage.total,
        free_bytes=usage.free,
        mountpoint=part.mountpoint if part else None,
        fstype=part.fstype if part else None,
        device=part.device if part else None,
    )


def mount_of(path: Path):  # -> psutil._common.sdiskpart | None
    """The mounted filesystem holding `path` (`findmnt -T PATH`)."""
    try:
        real = os.path.realpath(path)
        parts = psutil.disk_partitions(all=True)
    except OSError:
        return None
    best = None
    for part in parts:
        mp = part.mountpoint
        inside = real == mp or real.startswith(mp.rstrip(os.sep) + os.sep) or mp == os.sep
        if inside and (best is None or len(mp) > len(best.mountpoint)):
            best = part
    return best


def memory() -> MemoryInfo:
    """`free -b`."""
    vm = psutil.virtual_memory()
    return MemoryInfo(vm.total, vm.available, psutil.swap_memory().total)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def platform_info() -> PlatformInfo:
    """`uname -srm` plus /etc/os-release, WSL and container detection."""
    distro = None
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            distro = line.split("=", 1)[1].strip().strip('"')
    release = platform.release()
    wsl = "microsoft" in release.lower() or os.path.exists("/proc/sys/fs/binfmt_misc/WSLInterop")
    container = None
    if os.path.exists("/.dockerenv"):
        container = "docker"
    elif os.path.exists("/run/.containerenv"):
        container = "podman"
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        container = "kubernetes"
    else:
        cgroup = _read("/proc/1/cgroup")
        for name in ("docker", "kubepods", "containerd", "lxc"):
            if name in cgroup:
                container = name
                break
    return PlatformInfo(platform.system(), release, platform.machine(), distro, wsl, container)
