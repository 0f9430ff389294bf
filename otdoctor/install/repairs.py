"""Repairs that checks attach with one line (`fix = repairs.rebuild_venv`).

Every repair has the signature documented in `otdoctor/engine/check.py`, with the check as first
argument because it is bound as a method:

    def repair(check, ctx, confirm, dry_run=False) -> FixOutcome

With `dry_run` it returns the plan as commands and changes nothing. Repairs are idempotent, run
their commands with the output streamed into `otdoctor fix`'s live view and kept whole in
`<checkout>/otdoctor-fix.log`, and never delete user data: a venv is moved aside and removed only
after its replacement works.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Context
from otdoctor.engine.results import FixOutcome
from otdoctor.errors import UserError
from otdoctor.install.pip import (
    install_requirements,
    record_requirements,
    requirement_files,
    requirements_argv,
    setuptools_pin,
    unmet_requirements,
    upgrade_pip,
    upgrade_pip_argv,
    venv_dists,
)
from otdoctor.install.repair_kit import (
    Confirm,
    broken_editables,
    build_packages,
    can_sudo,
    do_pin,
    guide_python,
    in_checkout,
    no_checkout,
    pick_python,
    pin_commands,
    platform_file,
    reinstall_python,
    reinstall_torch,
    run_download_line,
    run_repair,
    venv_of,
)
from otdoctor.install.session import Session, quote
from otdoctor.install.state import installed_platform_file
from otdoctor.install.venv import rebuild_commands
from otdoctor.install.venv import rebuild_venv as _rebuild
from otdoctor.onetrainer import platforms
from otdoctor.onetrainer.gpu_facts import detect_gpu
from otdoctor.probe.python import venv_python


def pin_python(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """No `.python-version` (or one naming a missing/unsupported Python): `pyenv local X`."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check)
    pick = pick_python(ctx)
    if pick.pinned:
        return FixOutcome(check.id, False, f"nothing to do: {pick.reason}")
    cmds = pin_commands(ctx, pick)
    if dry_run:
        return FixOutcome(
            check.id, False, f"pin Python {pick.version or guide_python()} in the checkout ({pick.reason})", tuple(cmds)
        )

    def action(session: Session) -> str:
        done = do_pin(session, ctx, pick, confirm)
        return f"{done.reason} (wrote {ot_dir / '.python-version'})"

    return run_repair(check, ctx, action)


def rebuild_venv(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """The venv was made by a wrong or vanished Python (or is broken): make it again from the right one."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check)
    pick = pick_python(ctx)
    venv = venv_of(ctx)
    file, why, blocker = platform_file(ctx)
    if blocker:
        return FixOutcome(check.id, False, f"cannot rebuild: {blocker}")
    python_exe = (pick.prefix or Path("~/.pyenv/versions") / guide_python()) / "bin" / "python"
    cmds = ([] if pick.pinned else pin_commands(ctx, pick)) + rebuild_commands(python_exe, venv, ot_dir, file)
    if dry_run:
        return FixOutcome(
            check.id,
            False,
            f"rebuild {venv} from Python {pick.version or guide_python()} with {file} ({why})",
            tuple(cmds),
        )

    def action(session: Session) -> str:
        done = do_pin(session, ctx, pick, confirm)
        assert done.prefix is not None
        message = _rebuild(session, done.prefix / "bin" / "python", done.prefix, venv, ot_dir, file)
        record_requirements(ot_dir, file)
        return message + f" and installed {platforms.GLOBAL_REQUIREMENTS} + {file}"

    return run_repair(check, ctx, action)


def reinstall_platform_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """A CPU torch on an NVIDIA machine (or a torch for the wrong platform): reinstall the platform file."""
    if ctx.ot_dir is None:
        return no_checkout(check)
    file, why, blocker = platform_file(ctx)
    if blocker:
        return FixOutcome(check.id, False, f"cannot fix automatically: {blocker}")
    return reinstall_torch(check, ctx, dry_run, file, why, "torch is missing, broken or built for another platform")


def use_legacy_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """The driver is too old for the cu130 build: switch to the legacy (cu126) requirements.

    A GPU that needs CUDA >= 12.8 (sm_120) cannot use the legacy build: then the only fix is a
    newer driver, said as manual steps.
    """
    if ctx.ot_dir is None:
        return no_checkout(check)
    gpu = detect_gpu(ctx.probe)
    driver_step = (
        f"update the NVIDIA driver to {platforms.CUDA_FILE_TOOLKIT_DRIVER} or newer "
        "(Ubuntu: sudo ubuntu-drivers install; then reboot)"
    )
    if any(c >= platforms.BLACKWELL_CAPABILITY for c in gpu.compute_caps):
        legacy_cuda = "{}.{}".format(*platforms.LEGACY_FILE_BUILD)
        return FixOutcome(
            check.id,
            False,
            f"{', '.join(gpu.names) or 'this GPU'} needs a CUDA {platforms.BLACKWELL_MIN_CUDA}+ build; the legacy "
            f"requirements (CUDA {legacy_cuda}) cannot run it: {driver_step}",
            (driver_step,),
        )
    legacy = platforms.CUDA_LEGACY
    if not (ctx.ot_dir / legacy).is_file():
        return FixOutcome(check.id, False, f"this checkout has no {legacy}: {driver_step}", (driver_step,))
    drv = f"driver {gpu.driver_version}" if gpu.driver_version else "the driver"
    cuda = f"CUDA {gpu.driver_cuda[0]}.{gpu.driver_cuda[1]}" if gpu.driver_cuda else "an older CUDA"
    return reinstall_torch(
        check,
        ctx,
        dry_run,
        legacy,
        f"{drv} supports {cuda}; or {driver_step} to keep {platforms.CUDA_FILE_BUILD_TAG}",
        f"the driver is too old for the {platforms.CUDA_FILE_BUILD_TAG} build",
    )


def update_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """Requirements out of date after `git pull` (without update.sh): what update.sh installs."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check)
    venv = venv_of(ctx)
    file = installed_platform_file(ot_dir)
    why = "the file the last install used"
    if file is None or not (ot_dir / file).is_file():
        file, why, blocker = platform_file(ctx)
        if blocker:
            return FixOutcome(check.id, False, f"cannot fix automatically: {blocker}")
    cmds = [quote(upgrade_pip_argv(venv, ot_dir)), in_checkout(ot_dir, requirements_argv(venv, file))]
    if dry_run:
        return FixOutcome(
            check.id,
            False,
            f"install what the checkout's requirements name now, as ./update.sh does ({file}: {why})",
            tuple(cmds),
        )
    chosen = file

    def action(session: Session) -> str:
        upgrade_pip(session, "pip", venv, ot_dir)
        install_requirements(session, "requirements", venv, ot_dir, chosen)
        unmet = unmet_requirements(requirement_files(ot_dir, chosen), venv_dists(ctx.probe, venv) or {})
        if unmet:
            raise UserError("pip finished but these are still not satisfied: " + "; ".join(unmet[:3]))
        record_requirements(ot_dir, chosen)
        return f"installed {platforms.GLOBAL_REQUIREMENTS} + {chosen} as the checkout names them now"

    return run_repair(check, ctx, action)


def repair_editables(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """A broken editable checkout in venv/src (pip's IndexError in vcs/git.py): remove it, reinstall."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check)
    if ctx.probe.which("git") is None:
        return FixOutcome(
            check.id,
            False,
            "git is not installed; pip needs it for the editable dependencies: sudo apt install git",
            ("sudo apt install git",),
        )
    venv = venv_of(ctx)
    broken = broken_editables(ctx, venv)
    file = installed_platform_file(ot_dir) or platform_file(ctx)[0]
    cmds = [f"rm -rf {quote([d])}" for d in broken] + [in_checkout(ot_dir, requirements_argv(venv, file))]
    names = ", ".join(d.name for d in broken) or "none found broken"
    if dry_run:
        return FixOutcome(
            check.id,
            False,
            f"remove the damaged editable checkouts in {venv / 'src'} ({names}) and reinstall",
            tuple(cmds),
        )

    def action(session: Session) -> str:
        for d in broken:
            # pip's own clone of a dependency, not user data; moved then removed so a kill mid-way
            # never leaves a half-deleted folder pip would choke on again.
            tmp = d.with_name(f".{d.name}.otdoctor-removing-{time.time_ns()}")
            os.replace(d, tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            session.note(f"removed {d}")
        install_requirements(session, "requirements", venv, ot_dir, file)
        record_requirements(ot_dir, file)
        return f"removed {names} from {venv / 'src'} and reinstalled the requirements"

    return run_repair(check, ctx, action)


def pin_setuptools(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """setuptools >= 82 dropped pkg_resources: install the launcher's pin (81.0.0)."""
    if ctx.ot_dir is None:
        return no_checkout(check)
    venv = venv_of(ctx)
    pin = setuptools_pin(ctx.ot_dir)
    cmd = [str(venv_python(venv)), "-m", "pip", "install", pin]
    if dry_run:
        return FixOutcome(check.id, False, f"install {pin} in the venv, as OneTrainer's launcher does", (quote(cmd),))

    def action(session: Session) -> str:
        session.run("pip", cmd, cwd=ctx.ot_dir)
        return f"installed {pin}"

    return run_repair(check, ctx, action)


def rebuild_python(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """Stdlib modules missing from a pyenv Python: build packages (apt, where allowed),
    `pyenv install --force`, then rebuild the venv against the complete Python."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check)
    pick = pick_python(ctx)
    version, prefix = pick.version, pick.prefix
    if version is None or prefix is None:
        return pin_python(check, ctx, confirm, dry_run)
    packages = build_packages()
    sudo, sudo_why = can_sudo(ctx)
    apt_allowed = sudo is not None and ctx.probe.which("apt-get") is not None
    venv = venv_of(ctx)
    file, _, _ = platform_file(ctx)
    if dry_run:
        cmds = [f"sudo apt-get install -y {' '.join(packages)}", f"pyenv install --force {version}"]
        cmds += rebuild_commands(prefix / "bin" / "python", venv, ot_dir, file)
        note = "" if apt_allowed else f" (apt: {sudo_why})"
        what = f"install the build packages, rebuild Python {version} and the venv{note}"
        return FixOutcome(check.id, False, what, tuple(cmds))

    def action(session: Session) -> str:
        if (
            apt_allowed
            and sudo is not None
            and confirm(f"Install the build packages with apt-get ({' '.join(packages)})?")
        ):
            session.run("apt", [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages])
        elif not apt_allowed:
            session.ui.message(f"skipping apt ({sudo_why}): sudo apt-get install -y {' '.join(packages)}")
        reinstall_python(session, ctx, version, prefix, packages, confirm)
        done = do_pin(session, ctx, pick, confirm)
        assert done.prefix is not None
        message = _rebuild(session, done.prefix / "bin" / "python", done.prefix, venv, ot_dir, file)
        record_requirements(ot_dir, file)
        return f"rebuilt Python {version}; {message}"

    return run_repair(check, ctx, action)


def download_checkpoints(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """Missing or corrupt checkpoints: run the check's own plan through `otdoctor models download`.

    A damaged file is renamed to `<name>.bad` first (never deleted: it is the user's file), then
    the catalog's copy is downloaded; lines the check marks as notes (`# ...`) stay manual.
    """
    result = check.diagnose(ctx)
    commands = list(result.fix.commands) if result.fix else []
    runnable = [c for c in commands if c.startswith(("mv ", "otdoctor models download"))]
    notes = [c.lstrip("# ") for c in commands if c.startswith("#")]
    if not runnable:
        return FixOutcome(
            check.id,
            False,
            "nothing otdoctor can download here" + (f": {'; '.join(notes)}" if notes else ""),
            tuple(commands),
        )
    explicit = ctx.options.extra.get("explicit") or ()
    if result.status.value == "warn" and not any(p in ("models", check.id) for p in explicit):
        # Gigabytes for a warning nobody asked about: only on request.
        return FixOutcome(check.id, False, f"downloads are large: run `otdoctor fix {check.id}` to get them")
    damaged = any(c.startswith("mv ") for c in runnable)
    what = (
        "move the damaged files aside (kept as .bad) and download them again"
        if damaged
        else "download the missing checkpoints"
    )
    if dry_run:
        return FixOutcome(check.id, False, what, tuple(commands))

    def action(session: Session) -> str:
        done = [run_download_line(session, line) for line in runnable]
        return "; ".join(d for d in done if d) + (f" (by hand: {'; '.join(notes)})" if notes else "")

    return run_repair(check, ctx, action)


def fix_pip(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """venv.pip: pip missing or broken (ensurepip), or setuptools >= 82 (the launcher's pin)."""
    if ctx.ot_dir is None:
        return no_checkout(check)
    vpy = str(venv_python(venv_of(ctx)))
    pip_ok = ctx.probe.run([vpy, "-m", "pip", "--version"], timeout_s=60).ok
    if pip_ok:
        return pin_setuptools(check, ctx, confirm, dry_run)
    pin = setuptools_pin(ctx.ot_dir)
    ensure, upgrade = [vpy, "-m", "ensurepip", "--upgrade"], [vpy, "-m", "pip", "install", "--upgrade", "pip", pin]
    if dry_run:
        what = "reinstall pip into the venv, then the launcher's setuptools"
        return FixOutcome(check.id, False, what, (quote(ensure), quote(upgrade)))

    def action(session: Session) -> str:
        session.run("pip", ensure, cwd=ctx.ot_dir)
        session.run("pip", upgrade, cwd=ctx.ot_dir)
        return f"reinstalled pip and {pin}"

    return run_repair(check, ctx, action)


def sync_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """venv.requirements: damaged editable checkouts in venv/src first, then the update path."""
    if ctx.ot_dir is not None and broken_editables(ctx, venv_of(ctx)):
        return repair_editables(check, ctx, confirm, dry_run)
    return update_requirements(check, ctx, confirm, dry_run)


def fix_torch_build(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """gpu.cuda-build: a driver too old for the venv's torch gets the legacy build (or the driver
    to install); a CPU/ROCm/wrong-arch torch gets the platform file this machine needs."""
    if ctx.ot_dir is None:
        return no_checkout(check)
    gpu = detect_gpu(ctx.probe)
    if gpu.driver_cuda is not None and gpu.driver_cuda[0] < platforms.CUDA_FILE_MIN_MAJOR:
        return use_legacy_requirements(check, ctx, confirm, dry_run)
    return reinstall_platform_requirements(check, ctx, confirm, dry_run)


__all__ = [
    "pin_python",
    "rebuild_venv",
    "reinstall_platform_requirements",
    "use_legacy_requirements",
    "update_requirements",
    "repair_editables",
    "pin_setuptools",
    "rebuild_python",
    "download_checkpoints",
    "fix_pip",
    "sync_requirements",
    "fix_torch_build",
]
