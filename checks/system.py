"""The machine under OneTrainer: git, free disk, memory, the checkout's path and filesystem, OS.

Thresholds and the filesystem lists live in `otdoctor/data/system.toml`. The assessments are
small functions of probe values (`assess_memory`, `assess_platform`, `fstype_problem`) so they can
be tried against real numbers with other thresholds.

system.git and system.platform live here; system.disk in system_disk.py, system.memory in
system_memory.py, system.path in system_path.py. `CHECKS` below is the area's order in every output.
"""

from __future__ import annotations

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.probe.host import PlatformInfo

from .system_common import thresholds
from .system_disk import DiskSpace
from .system_memory import Memory
from .system_path import CheckoutPath


# system.git ---------------------------------------------------------------------------------------
class GitPresent(Check):
    id = "system.git"
    title = "git"
    area = "system"

    def diagnose(self, ctx: Context) -> CheckResult:
        result = ctx.probe.run(["git", "--version"], timeout_s=10)
        if result.missing:
            return CheckResult.fail(
                "git is not installed (not on PATH)",
                expected="git on PATH",
                why="OneTrainer's install.sh and update.sh clone and pull with git, and pip installs "
                "its editable dependencies (diffusers, mgds) from git repositories into venv/src",
                fix=Fix("install git", (_install_command(ctx, "git"),)),
            )
        if not result.ok:
            return CheckResult.fail(
                f"git does not run: {result.describe_failure()}",
                expected="`git --version` succeeds",
                why="OneTrainer's installer and updater need a working git",
                fix=Fix("reinstall git", (_install_command(ctx, "git"),)),
            )
        version = result.stdout.strip().removeprefix("git version ").strip()
        return CheckResult.ok(f"git {version} ({ctx.probe.which('git')})", data={"version": version})


_INSTALLERS = (
    ("apt-get", "sudo apt install {}"),
    ("dnf", "sudo dnf install {}"),
    ("pacman", "sudo pacman -S {}"),
    ("zypper", "sudo zypper install {}"),
    ("apk", "sudo apk add {}"),
    ("brew", "brew install {}"),
)


def _install_command(ctx: Context, package: str) -> str:
    """The package manager this machine has; apt (the guide's Ubuntu) when none is found."""
    if ctx.probe.platform().system == "Darwin":
        return f"brew install {package}"
    for exe, template in _INSTALLERS:
        if ctx.probe.which(exe):
            return template.format(package)
    return f"sudo apt install {package}"


# system.platform ---------------------------------------------------------------------------------------
def assess_platform(info: PlatformInfo) -> CheckResult:
    cuda_machines = [m.lower() for m in thresholds()["platform"]["cuda_machines"]]
    where = [f"{info.system} {info.release} {info.machine}"]
    if info.distro:
        where.append(f"({info.distro})")
    if info.wsl:
        where.append("under WSL")
    if info.container:
        where.append(f"in a {info.container} container")
    found = " ".join(where)
    data = {
        "system": info.system,
        "release": info.release,
        "machine": info.machine,
        "distro": info.distro,
        "wsl": info.wsl,
        "container": info.container,
    }
    notes: list[str] = []
    if info.wsl:
        notes.append(
            "WSL: the NVIDIA driver is the Windows one (nvidia-smi in /usr/lib/wsl/lib); keep OneTrainer "
            "in the Linux filesystem (~/Projects), not under /mnt/c"
        )
    if info.container:
        notes.append(
            "container: the GPU must be passed in (docker run --gpus all) and /dev/shm sized for the dataloader"
        )
    if info.system == "Darwin":
        return CheckResult.warn(
            found,
            expected="Linux or Windows on x86_64 with an NVIDIA GPU",
            why="macOS has no CUDA: OneTrainer installs its CPU/MPS requirements (requirements-default.txt), "
            "where SDXL fine-tuning is very slow, and otdoctor's GPU checks do not apply",
            fix=Fix("train on a Linux machine with an NVIDIA GPU (a rented one works)", ()),
            details=tuple(notes),
            data=data,
        )
    if info.machine.lower() not in cuda_machines:
        return CheckResult.fail(
            found,
            expected="an x86_64 (amd64) machine",
            why=f"OneTrainer's CUDA requirements have no {info.machine} wheels: pip cannot install them, "
            "and training could at best run on the CPU",
            fix=Fix("train on an x86_64 Linux machine with an NVIDIA GPU", ()),
            details=tuple(notes),
            data=data,
        )
    if info.system == "Windows":
        return CheckResult.warn(
            found,
            expected="Linux (or WSL) for otdoctor's checks",
            why="otdoctor's checks are written for Linux; OneTrainer on Windows uses the .bat launchers",
            fix=Fix("run otdoctor inside WSL, next to a OneTrainer checkout there", ()),
            details=tuple(notes),
            data=data,
        )
    return CheckResult.ok(found, details=tuple(notes), data=data)


class PlatformCheck(Check):
    id = "system.platform"
    title = "Operating system and architecture"
    area = "system"

    def diagnose(self, ctx: Context) -> CheckResult:
        return assess_platform(ctx.probe.platform())


CHECKS = [GitPresent, DiskSpace, Memory, CheckoutPath, PlatformCheck]
