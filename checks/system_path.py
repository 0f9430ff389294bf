"""system.path: the checkout's path (no spaces) and the filesystem it lives on (no FAT, no NTFS)."""

from __future__ import annotations

import shlex
from pathlib import Path

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, Status
from otdoctor.probe.host import DiskUsage

from .system_common import no_checkout, thresholds


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


def _problems(
    ot_dir: Path, usage: DiskUsage | None, fstype: str | None, block_type: str | None
) -> tuple[list[tuple[Status, str]], list[str]]:
    """(what is wrong with the checkout's place, with its status; why each matters)."""
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
    return problems, reasons


# Outside a home folder whose own path has a space: root's place for add-on software (FHS).
SYSTEM_PARENT = Path("/opt")


def move_target(home: Path) -> Path:
    """A free place without spaces for the checkout: ~/Projects/OneTrainer as the guide has it, else
    a numbered one; /opt/OneTrainer when the home folder's own path has a space.

    `mv SRC DEST` into an existing folder would nest the checkout inside it, so DEST must not exist.
    """
    parents = [SYSTEM_PARENT] if " " in str(home) else [home / "Projects", home]
    candidates = [parent / "OneTrainer" for parent in parents]
    candidates += [parents[0] / f"OneTrainer-{n}" for n in range(2, 100)]
    return next((c for c in candidates if not c.exists()), candidates[-1])


def move_commands(ot_dir: Path, target: Path) -> tuple[str, str]:
    """Create the parent first (a fresh home has no ~/Projects), then move; quoted for any path.
    Into /opt only root may write: move as root, then give the checkout back to the user."""
    src, dest, parent = (shlex.quote(str(p)) for p in (ot_dir, target, target.parent))
    rebuild = f"cd {dest} && rm -rf venv && ./install.sh"
    if target.parent == SYSTEM_PARENT:
        owner = '"$(id -un):$(id -gn)"'
        return (f"sudo mkdir -p {parent} && sudo mv {src} {dest} && sudo chown -R {owner} {dest}", rebuild)
    return (f"mkdir -p {parent} && mv {src} {dest}", rebuild)


def move_summary(home: Path, target: Path) -> str:
    if target.parent == SYSTEM_PARENT:
        return (
            f"your home folder {str(home)!r} itself has a space, so every folder in it does too: move the "
            f"checkout out of it, to {target} (needs sudo; or to any folder without spaces you can write to), "
            "and rebuild its venv there (a venv does not survive a move)"
        )
    return (
        f"move the checkout to a folder without spaces on a Linux filesystem, e.g. {target}, "
        "and rebuild its venv there (a venv does not survive a move)"
    )


class CheckoutPath(Check):
    id = "system.path"
    title = "Checkout path and filesystem"
    area = "system"
    requires = ("onetrainer.checkout",)

    def diagnose(self, ctx: Context) -> CheckResult:
        ot_dir = ctx.ot_dir
        if ot_dir is None:  # onetrainer.checkout was not selected (--only system)
            return no_checkout()
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
        problems, reasons = _problems(ot_dir, usage, fstype, block_type)
        if not problems:
            return CheckResult.ok(f"{ot_dir} on {fstype or 'an unknown filesystem'}", data=data)
        status = Status.FAIL if any(s is Status.FAIL for s, _ in problems) else Status.WARN
        home = Path(ctx.probe.home)
        target = move_target(home)
        return CheckResult(
            status,
            "; ".join(text for _, text in problems),
            expected="a path without spaces on a Linux filesystem (ext4, xfs, btrfs)",
            why="; ".join(reasons),
            fix=Fix(move_summary(home, target), move_commands(ot_dir, target)),
            details=tuple(text for _, text in problems) if len(problems) > 1 else (),
            data=data,
        )
