"""The machine under OneTrainer: git, free disk, memory, the checkout's path and filesystem, OS.

Thresholds and the filesystem lists live in `otdoctor/data/system.toml`. The assessments are
small functions of probe values (`assess_memory`, `assess_platform`, `fstype_problem`) so they can
be tried against real numbers with other thresholds.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, Status
from otdoctor.probe.host import DiskUsage, MemoryInfo, PlatformInfo
from otdoctor.render import human_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the 3.10 pass
    import tomli as tomllib


@functools.cache
def thresholds() -> Mapping[str, Any]:
    text = resources.files("otdoctor.data").joinpath("system.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


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


# system.disk ---------------------------------------------------------------------------------------
@dataclass
class _Need:
    role: str  # checkout, model output, workspace, cache
    path: Path
    needed_bytes: int


@dataclass
class _Filesystem:
    usage: DiskUsage
    needs: list[_Need] = field(default_factory=list)

    @property
    def needed_bytes(self) -> int:
        return sum(n.needed_bytes for n in self.needs)

    @property
    def name(self) -> str:
        return self.usage.mountpoint or self.usage.path


def _family(model_type: str) -> str:
    mt = model_type.upper()
    if "STABLE_DIFFUSION_15" in mt or "STABLE_DIFFUSION_20" in mt or "STABLE_DIFFUSION_21" in mt:
        return "sd15"
    return "sdxl"


_DTYPE_FACTOR = {"FLOAT_32": 2.0, "FLOAT_16": 1.0, "BFLOAT_16": 1.0, "FLOAT_8": 0.5, "NFLOAT_4": 0.25}


def save_bytes(model_type: str, output_dtype: str, training_method: str) -> int:
    """The size of one checkpoint save for these settings (see system.toml [disk])."""
    disk = thresholds()["disk"]
    if training_method.upper() in ("LORA", "EMBEDDING"):
        return int(disk["adapter_save_bytes"])
    base = disk["save_bytes_16bit"][_family(model_type)]
    return int(base * _DTYPE_FACTOR.get(output_dtype.upper(), 1.0))


def _config(ctx: Context):
    """The run's training config (--config, else the UI's last-used state), shared with the config
    checks through `otconfig.config_facts`; (TrainConfig or None, a note when it could not be read)."""
    from otdoctor.onetrainer.config import config_facts

    facts = config_facts(ctx)
    if facts.error is not None:
        return None, f"config {facts.path} not read ({facts.error})"
    return facts.config, None


def _venv_exists(ot_dir: Path) -> bool:
    return (ot_dir / "venv" / "bin" / "activate").is_file() or (ot_dir / "venv" / "Scripts" / "activate").is_file()


class DiskSpace(Check):
    id = "system.disk"
    title = "Free disk space"
    area = "system"
    requires = ("onetrainer.checkout",)

    def diagnose(self, ctx: Context) -> CheckResult:
        ot_dir = ctx.ot_dir
        if ot_dir is None:  # onetrainer.checkout was not selected (--only system)
            return _no_checkout()
        disk = thresholds()["disk"]
        notes: list[str] = []
        venv_need = disk["venv_update_bytes"] if _venv_exists(ot_dir) else disk["venv_install_bytes"]
        needs = [_Need("checkout (venv)", ot_dir, int(venv_need))]
        config, note = _config(ctx)
        if note:
            notes.append(f"{note}; measured as without a config")
        if config is None:
            # OneTrainer's default output is models/ inside the checkout; the guide trains SDXL.
            needs.append(
                _Need(
                    "model output",
                    ot_dir / "models",
                    save_bytes("STABLE_DIFFUSION_XL_10_BASE", "BFLOAT_16", "FINE_TUNE"),
                )
            )
            basis = f"one SDXL bf16 save ({human_bytes(needs[-1].needed_bytes)}; no training config found)"
        else:
            one_save = save_bytes(config.model_type, str(config.get("output_dtype")), config.training_method)
            out = str(config.get("output_model_destination") or "models/model.safetensors")
            needs.append(_Need("model output", config.resolve(out, ot_dir), one_save))
            backups = int(disk["workspace_backups"])
            needs.append(
                _Need("workspace", config.resolve(str(config.get("workspace_dir")), ot_dir), one_save * backups)
            )
            needs.append(_Need("cache", config.resolve(str(config.get("cache_dir")), ot_dir), int(disk["cache_bytes"])))
            basis = (
                f"{config.model_type} {config.training_method} saves in {config.get('output_dtype')} "
                f"({human_bytes(one_save)} each)"
            )

        filesystems: dict[tuple[str | None, str | None, str], _Filesystem] = {}
        unmeasured: list[str] = []
        for need in needs:
            usage = ctx.probe.disk_usage(need.path)
            if usage is None:
                unmeasured.append(f"{need.role}: {need.path} could not be measured")
                continue
            key = (usage.mountpoint, usage.device, usage.path if usage.mountpoint is None else "")
            filesystems.setdefault(key, _Filesystem(usage)).needs.append(need)

        warn_factor = float(disk["warn_factor"])
        worst = Status.OK
        details: list[str] = []
        data_fs = []
        for fs in filesystems.values():
            free, needed = fs.usage.free_bytes, fs.needed_bytes
            if free < needed:
                state, worst = "too little", Status.FAIL
            elif free < needed * warn_factor:
                state = "tight"
                worst = Status.WARN if worst is Status.OK else worst
            else:
                state = "enough"
            holds = ", ".join(f"{n.role} {n.path}" for n in fs.needs)
            details.append(
                f"{fs.name} ({fs.usage.fstype or 'unknown'}): {human_bytes(free)} free of "
                f"{human_bytes(fs.usage.total_bytes)}, needs {human_bytes(needed)} ({state}); holds {holds}"
            )
            data_fs.append(
                {
                    "mountpoint": fs.usage.mountpoint,
                    "device": fs.usage.device,
                    "fstype": fs.usage.fstype,
                    "free_bytes": free,
                    "total_bytes": fs.usage.total_bytes,
                    "needed_bytes": needed,
                    "state": state,
                    "holds": [{"role": n.role, "path": str(n.path), "needed_bytes": n.needed_bytes} for n in fs.needs],
                }
            )
        details.extend(unmeasured + notes)
        data = {"filesystems": data_fs, "basis": basis}
        short = "; ".join(
            f"{fs.name} {human_bytes(fs.usage.free_bytes)} free (needs {human_bytes(fs.needed_bytes)})"
            for fs in filesystems.values()
        )
        if worst is Status.OK:
            return CheckResult.ok(short, details=tuple(details), data=data)
        low = [fs for fs in filesystems.values() if fs.usage.free_bytes < fs.needed_bytes * warn_factor]
        status = worst
        return CheckResult(
            status,
            ("not enough free disk: " if status is Status.FAIL else "disk space is tight: ") + short,
            expected=f"free space for the venv, caches and {basis}, and room for more than one save",
            why="a training run that cannot write its save or backup fails after hours of work, "
            "and pip fails half-way through installing torch",
            fix=Fix(
                "free space on "
                + ", ".join(fs.name for fs in low)
                + ", or point workspace_dir / cache_dir / output_model_destination at a larger disk",
                tuple(f"du -xh --max-depth=2 {fs.name} | sort -h | tail -n 15" for fs in low),
            ),
            details=tuple(details),
            data=data,
        )


def _no_checkout() -> CheckResult:
    return CheckResult.skip("no OneTrainer checkout to look at (see onetrainer.checkout)")


# system.memory ---------------------------------------------------------------------------------------
def memory_need(model_type: str = "STABLE_DIFFUSION_XL_10_BASE", ema: str = "OFF") -> tuple[int, int, str]:
    """(minimum, recommended) total RAM in bytes for a fine-tune of this model, and why."""
    mem = thresholds()["memory"]
    family = _family(model_type)
    minimum = int(mem[family]["min_total_bytes"])
    recommended = int(mem[family]["recommended_total_bytes"])
    basis = "SDXL fine-tuning" if family == "sdxl" else "SD 1.5 fine-tuning"
    if ema.upper() == "CPU":
        extra = int(mem["ema_cpu_extra_bytes"][family])
        minimum += extra
        recommended += extra
        basis += " with EMA on the CPU"
    return minimum, recommended, basis


def assess_memory(info: MemoryInfo, minimum: int, recommended: int, basis: str) -> CheckResult:
    data = {
        "total_bytes": info.total_bytes,
        "available_bytes": info.available_bytes,
        "swap_total_bytes": info.swap_total_bytes,
        "min_total_bytes": minimum,
        "recommended_total_bytes": recommended,
        "basis": basis,
        "threshold_why": "OneTrainer loads the checkpoint into system RAM first (an SDXL UNet held in fp32 is "
        "10.3 GB); 16 GB machines swap or are OOM-killed loading SDXL, 32 GB is comfortable (otdoctor/data/system.toml)",
    }
    found = (
        f"{human_bytes(info.total_bytes)} RAM, {human_bytes(info.available_bytes)} available, "
        f"{human_bytes(info.swap_total_bytes)} swap"
    )
    expected = f"at least {human_bytes(minimum)} RAM for {basis}, {human_bytes(recommended)} recommended"
    why = (
        "OneTrainer loads the checkpoint into system RAM before moving it to the GPU (an SDXL UNet "
        "held in fp32 is 10.3 GB) and caches latents in RAM; too little RAM means swapping or the "
        "kernel's OOM killer ending the run"
    )
    if info.total_bytes < minimum:
        return CheckResult.fail(
            found,
            expected=expected,
            why=why,
            fix=Fix(
                "train on a machine with more RAM, or add swap to survive model loading (slow)",
                (
                    "sudo fallocate -l 16G /swapfile && sudo chmod 600 /swapfile && sudo mkswap /swapfile && sudo swapon /swapfile",
                ),
            ),
            data=data,
        )
    if info.total_bytes < recommended:
        return CheckResult.warn(
            found,
            expected=expected,
            why=why,
            fix=Fix("close other programs while training; set dataloader_threads to 1-2 in the config", ()),
            data=data,
        )
    if info.available_bytes < minimum:
        return CheckResult.warn(
            f"{found}: other programs are using most of it",
            expected=f"at least {human_bytes(minimum)} available for {basis}",
            why=why,
            fix=Fix("see what uses the memory and close it", ("ps aux --sort=-rss | head -n 10",)),
            data=data,
        )
    return CheckResult.ok(f"{found} (needs {human_bytes(minimum)} for {basis})", data=data)


class Memory(Check):
    id = "system.memory"
    title = "System memory"
    area = "system"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        config, _note = _config(ctx)
        if config is None:
            minimum, recommended, basis = memory_need()
        else:
            minimum, recommended, basis = memory_need(config.model_type, str(config.get("ema") or "OFF"))
        return assess_memory(ctx.probe.memory(), minimum, recommended, basis)


# system.path ---------------------------------------------------------------------------------------
def fstype_problem(fstype: str | None, block_type: str | None = None) -> tuple[Status, str] | None:
    """FAIL for FAT-family filesystems, WARN for NTFS and WSL's Windows drives, else None."""
    table = thresholds()["path"]
    if not fstype:
        return None
    fstype = fstype.lower()
    if fstype in table["fuseblk_fstypes"]:
        if block_type:
            fstype = block_type.lower()
        else:
            return Status.WARN, "a FUSE block filesystem (NTFS or exFAT through FUSE)"
    if fstype in table["fat_fstypes"]:
        return Status.FAIL, f"{fstype} (FAT family: no symlinks, no executable bits, FAT32 files stop at 4 GiB)"
    if fstype in table["slow_fstypes"]:
        return (
            Status.WARN,
            f"{fstype} (a Windows filesystem: slow for a venv's many small files, permissions depend on mount options)",
        )
    return None


def _block_type(ctx: Context, device: str | None) -> str | None:
    """`blkid -o value -s TYPE DEVICE`, else `lsblk -no FSTYPE DEVICE`: what is behind `fuseblk`."""
    if not device or not device.startswith("/dev/"):
        return None
    for argv in (["blkid", "-o", "value", "-s", "TYPE", device], ["lsblk", "-no", "FSTYPE", device]):
        result = ctx.probe.run(argv, timeout_s=5)
        if result.ok and result.stdout.strip():
            return result.stdout.strip().splitlines()[0]
    return None


class CheckoutPath(Check):
    id = "system.path"
    title = "Checkout path and filesystem"
    area = "system"
    requires = ("onetrainer.checkout",)

    def diagnose(self, ctx: Context) -> CheckResult:
        ot_dir = ctx.ot_dir
        if ot_dir is None:  # onetrainer.checkout was not selected (--only system)
            return _no_checkout()
        usage = ctx.probe.disk_usage(ot_dir)
        fstype = usage.fstype if usage else None
        block_type = _block_type(ctx, usage.device) if usage and fstype == "fuseblk" else None
        data = {
            "path": str(ot_dir),
            "fstype": fstype,
            "block_fstype": block_type,
            "mountpoint": usage.mountpoint if usage else None,
            "has_space": " " in str(ot_dir),
        }
        problems: list[tuple[Status, str]] = []
        reasons: list[str] = []
        if " " in str(ot_dir):
            problems.append((Status.FAIL, f"the path {str(ot_dir)!r} contains a space"))
            reasons.append("OneTrainer's launchers and some of its dependencies break on paths with spaces")
        fs = fstype_problem(fstype, block_type)
        if fs:
            problems.append((fs[0], f"the checkout is on {fs[1]}, mounted at {usage.mountpoint if usage else '?'}"))
            reasons.append(
                "a venv needs symlinks and executable files, and SDXL saves are larger than FAT32's 4 GiB limit"
                if fs[0] is Status.FAIL
                else "a venv's thousands of small files are slow there, and permissions depend on mount options"
            )
        if not problems:
            return CheckResult.ok(f"{ot_dir} on {fstype or 'an unknown filesystem'}", data=data)
        status = Status.FAIL if any(s is Status.FAIL for s, _ in problems) else Status.WARN
        target = Path(ctx.probe.home) / "Projects" / "OneTrainer"
        return CheckResult(
            status,
            "; ".join(text for _, text in problems),
            expected="a path without spaces on a Linux filesystem (ext4, xfs, btrfs)",
            why="; ".join(reasons),
            fix=Fix(
                f"move the checkout to a folder without spaces on a Linux filesystem, e.g. {target}, "
                "and rebuild its venv there (a venv does not survive a move)",
                (f"mv {_quote(str(ot_dir))} {target}", f"cd {target} && rm -rf venv && ./install.sh"),
            ),
            details=tuple(text for _, text in problems) if len(problems) > 1 else (),
            data=data,
        )


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


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
