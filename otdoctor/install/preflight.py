"""The install's pre-flight: refuse early, before anything is touched, and say what to do instead."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.install import git
from otdoctor.install.python_pin import install_request
from otdoctor.install.state import LOG_NAME, STATE_NAME
from otdoctor.onetrainer import checkout as ot_checkout
from otdoctor.onetrainer.platforms import choose_platform
from otdoctor.probe.python import match_installed

if TYPE_CHECKING:
    from otdoctor.install.installer import Installer

# The doctor's own verdicts that stop an install before it starts.
BLOCKING_CHECKS = ("system.git", "system.disk", "gpu.driver", "python.pyenv")


def preflight(inst: Installer) -> list[str]:
    """Refuse early, before anything is touched. Returns warnings worth showing."""
    data = load_table("install.toml")
    warnings: list[str] = []
    _require_tools(inst)
    disk = inst.probe.disk_usage(inst.dir)
    if disk is not None and (disk.fstype or "").lower() in data["bad_filesystems"]:
        raise UserError(
            f"{inst.dir} is on a {disk.fstype} filesystem ({disk.mountpoint}); "
            "a venv needs symlinks and permissions FAT/exFAT lack",
            hint="install onto an ext4/btrfs/xfs drive, e.g. --dir ~/Projects/OneTrainer",
        )
    inst.platform = platform = choose_platform(inst.probe, inst.opts.platform)
    if platform.blocker:
        raise UserError(platform.blocker)
    warnings.extend(platform.warnings)
    if disk is not None:
        need = data["min_free_bytes"].get(platform.key, data["min_free_bytes"]["cuda"])
        have_venv = (inst.venv / "bin" / "activate").is_file()
        if disk.free_bytes < need and not have_venv:
            from otdoctor.render import human_bytes

            raise UserError(
                f"only {human_bytes(disk.free_bytes)} free on {disk.mountpoint or disk.path}; "
                f"installing OneTrainer ({platform.key}) needs about {human_bytes(need)}",
                hint="free some space, or choose another --dir",
            )
    _check_existing_dir(inst)
    if not inst.opts.python:  # an existing checkout's launcher may recommend a newer Python than the guide's
        inst.python_request = install_request(inst.pyenv, inst.dir, inst.python_request)
    validate_python_request(inst, python_range(inst))
    warnings.extend(_engine_checks(inst))
    if inst.probe.env.get("PYENV_VERSION"):
        warnings.append(
            f"PYENV_VERSION={inst.probe.env['PYENV_VERSION']} is set in this shell: it overrides the "
            ".python-version the install writes; unset it before starting OneTrainer"
        )
    return warnings


def _require_tools(inst: Installer) -> None:
    if " " in str(inst.dir):
        raise UserError(
            f"the install folder {inst.dir} contains a space; OneTrainer's launchers break on it",
            hint="choose a folder without spaces, e.g. --dir ~/Projects/OneTrainer",
        )
    if inst.probe.which("git") is None:
        raise UserError(
            "git is not installed; OneTrainer is cloned with git and its editable dependencies too",
            hint="sudo apt install git",
        )
    if inst.pyenv.root is None or inst.pyenv.executable is None:
        raise UserError(
            "pyenv is not installed; the guide installs OneTrainer's Python through pyenv",
            hint="curl -fsSL https://pyenv.run | bash   "
            "(then add pyenv to your shell as it prints, and open a new terminal)",
        )


def _engine_checks(inst: Installer) -> list[str]:
    """The doctor's own machine checks (git, pyenv, disk, driver), shown when not OK."""
    from otdoctor.engine.doctor import make_context, run_doctor
    from otdoctor.engine.registry import load_checks
    from otdoctor.engine.results import Status

    checks, _ = load_checks(include_plugins=False)
    wanted = [c.id for c in checks if c.area in ("system", "gpu") or c.id.startswith("python.pyenv")]
    if not wanted:
        return []
    # Not offline=True: that sets PIP_NO_INDEX for this process, and the install needs the index.
    ctx = make_context(inst.probe, inst.dir if inst.dir.is_dir() else None)
    report = run_doctor(ctx, only=wanted)
    out = []
    for o in report.outcomes:
        if o.status in (Status.FAIL, Status.ERROR) and o.check_id.startswith(BLOCKING_CHECKS) and o.required:
            raise UserError(
                f"pre-flight: {o.title} ({o.check_id}): {o.result.summary}",
                hint=" ; ".join(o.result.fix.commands) if o.result.fix and o.result.fix.commands else None,
            )
        if o.status in (Status.WARN, Status.FAIL, Status.ERROR):
            out.append(f"{o.title} ({o.check_id}): {o.result.summary}")
    return out


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        return str(Path(url).expanduser().resolve())
    return url.lower()


def _check_existing_dir(inst: Installer) -> None:
    if not inst.dir.exists():
        blocker = next((a for a in inst.dir.parents if a.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise UserError(
                f"cannot create {inst.dir}: {blocker} is a file, not a folder",
                exit_code=2,
                hint="choose another --dir",
            )
        return
    if not inst.dir.is_dir():
        raise UserError(f"{inst.dir} exists and is not a folder")
    if (inst.dir / ".git").exists():
        _check_origin(inst)
        return
    ours = {LOG_NAME, STATE_NAME}
    others = [p.name for p in inst.dir.iterdir() if p.name not in ours]
    if others:
        raise UserError(
            f"{inst.dir} exists, is not a git checkout and is not empty ({', '.join(sorted(others)[:5])})",
            hint="choose an empty or new --dir; otdoctor never overwrites files it did not make",
        )


def _check_origin(inst: Installer) -> None:
    origin = inst.probe.git(inst.dir, "config", "--get", "remote.origin.url")  # as set, before any insteadOf
    if (
        origin.ok
        and normalise_url(origin.stdout.strip()) != normalise_url(inst.repo_url)
        and not git.nothing_fetched(inst.probe, inst.dir)
    ):
        raise UserError(
            f"{inst.dir} is a checkout of {origin.stdout.strip()}, not {inst.repo_url}",
            hint="choose another --dir, or pass --repo-url with that repository",
        )


def python_range(inst: Installer) -> tuple[str, str, str]:
    has_checkout = (inst.dir / "lib.include.sh").is_file()
    return ot_checkout.python_range(inst.dir if has_checkout else None)


def validate_python_request(inst: Installer, rng: tuple[str, str, str]) -> None:
    from packaging.version import InvalidVersion, Version

    lo, hi, source = rng
    prefix = match_installed(inst.pyenv, inst.python_request)
    candidate = prefix.name if prefix else inst.python_request
    try:
        v = Version(candidate)
    except InvalidVersion:
        raise UserError(f"--python {inst.python_request!r} is not a version like 3.10 or 3.12.4", exit_code=2) from None
    base = Version(".".join(str(x) for x in (v.release + (0, 0))[:2]))
    if base < Version(lo) or base >= Version(hi):
        raise UserError(
            f"Python {candidate} is outside what OneTrainer accepts (>={lo}, <{hi}, from {source})",
            exit_code=2,
            hint=f"use --python {load_table('install.toml')['default_python']}",
        )
    if v.release[:3] == (3, 11, 0):
        raise UserError(
            "Python 3.11.0 exactly is rejected by OneTrainer (a dependency excludes it)",
            exit_code=2,
            hint="use a later 3.11.x, e.g. pyenv install 3.11.9, or --python 3.10",
        )
