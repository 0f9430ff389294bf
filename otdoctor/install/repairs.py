"""Repairs that other engineers' checks attach with one line (`fix = repairs.rebuild_venv`).

Every repair has the signature documented in `otdoctor/check.py`, with the check as first
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Context
from otdoctor.engine.results import FixOutcome
from otdoctor.errors import UserError
from otdoctor.install.installer import (
    DATA,
    PhaseFailed,
    Session,
    choose_platform,
    detect_gpu,
    install_requirements,
    installed_platform_file,
    quote,
    rebuild_commands,
    record_requirements,
    requirement_files,
    setuptools_pin,
    unmet_requirements,
    venv_dists,
)
from otdoctor.install.installer import (
    rebuild_venv as _rebuild,
)
from otdoctor.probe.python import match_installed, venv_python

Confirm = Callable[[str], bool]
FIX_LOG = "otdoctor-fix.log"


class _QuietUI:
    """Used when a repair runs outside `otdoctor fix` (a test calling it directly)."""

    def phase(self, name: str, title: str) -> None: ...
    def done(self, name: str, detail: str) -> None: ...
    def output(self, line: str) -> None: ...
    def message(self, text: str) -> None: ...
    def confirm(self, question: str) -> bool:
        return False


def _session(ctx: Context) -> Session:
    # Without a checkout (a checkpoint fix with only --models-dir) the log goes to otdoctor's cache.
    from otdoctor.probe.files import cache_dir

    ui = ctx.options.extra.get("ui") or _QuietUI()
    log_dir = ctx.ot_dir if ctx.ot_dir is not None else cache_dir(ctx.probe.env)
    log_dir.mkdir(parents=True, exist_ok=True)
    return Session(ctx.probe, ui, log_dir / FIX_LOG)


def _venv(ctx: Context) -> Path:
    assert ctx.ot_dir is not None
    name = ctx.probe.env.get("OT_PYTHON_VENV") or "venv"
    p = Path(name).expanduser()
    return p if p.is_absolute() else ctx.ot_dir / p


def _no_checkout(check: Any) -> FixOutcome:
    return FixOutcome(check.id, False, "no OneTrainer checkout to repair: run `otdoctor install` first")


def _run(check: Any, ctx: Context, action: Callable[[Session], str]) -> FixOutcome:
    """Run a repair's action; a failed command becomes an unapplied outcome naming the log."""
    session = _session(ctx)
    try:
        message = action(session)
    except PhaseFailed as exc:
        tail = "; ".join(exc.tail[-3:])
        return FixOutcome(
            check.id,
            False,
            f"failed: {exc.message.splitlines()[0]}"
            + (f" ({tail})" if tail else "")
            + f"; full log: {session.log_path}",
        )
    except UserError as exc:
        return FixOutcome(check.id, False, f"failed: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    finally:
        session.close()
    ctx.forget()
    return FixOutcome(check.id, True, message)


# Which Python, which platform file ----------------------------------------------------------------
@dataclass(frozen=True)
class _PythonPick:
    version: str | None  # an installed pyenv version name (3.10.13)
    prefix: Path | None
    pinned: bool  # .python-version in the checkout selects it
    reason: str


def _accepted(version: str, ot_dir: Path) -> bool:
    from packaging.version import InvalidVersion, Version

    from otdoctor.onetrainer.checkout import python_range

    lo, hi, _ = python_range(ot_dir)
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    base = Version(f"{v.major}.{v.minor}")
    return Version(lo) <= base < Version(hi) and v.release[:3] != (3, 11, 0)


def _pick_python(ctx: Context) -> _PythonPick:
    """The checkout's pinned pyenv Python when it is installed and accepted; else the best installed one.

    Preference: the guide's 3.10, then the newest accepted version pyenv has.
    """
    assert ctx.ot_dir is not None
    pyenv = ctx.probe.pyenv()
    req = ctx.probe.python_request(ctx.ot_dir)
    pinned_here = req.source == str(ctx.ot_dir / ".python-version")
    if pinned_here and req.prefix is not None and _accepted(req.prefix.name, ctx.ot_dir):
        return _PythonPick(req.prefix.name, req.prefix, True, f".python-version selects {req.prefix.name}")
    guide = match_installed(pyenv, DATA["default_python"])
    if guide is not None and _accepted(guide.name, ctx.ot_dir):
        return _PythonPick(guide.name, guide, False, f"the guide's Python {DATA['default_python']}")
    from packaging.version import InvalidVersion, Version

    accepted = []
    for v in pyenv.versions:
        try:
            if _accepted(v, ctx.ot_dir):
                accepted.append((Version(v), v))
        except InvalidVersion:
            continue
    if accepted:
        name = max(accepted)[1]
        assert pyenv.root is not None
        return _PythonPick(name, pyenv.root / "versions" / name, False, "the newest accepted Python pyenv has")
    return _PythonPick(None, None, False, "pyenv has no Python OneTrainer accepts")


def _platform_file(ctx: Context) -> tuple[str, str, str | None]:
    """(file, why, blocker): what this machine needs, honouring OT_PLATFORM_REQUIREMENTS."""
    choice = choose_platform(ctx.probe, "auto")
    return choice.file, choice.reason, choice.blocker


def _pin_commands(ctx: Context, pick: _PythonPick) -> list[str]:
    assert ctx.ot_dir is not None
    cmds = []
    if pick.version is None:
        cmds.append(f"pyenv install {DATA['default_python']}")
    cmds.append(f"cd {quote([ctx.ot_dir])} && pyenv local {pick.version or DATA['default_python']}")
    return cmds


def _do_pin(session: Session, ctx: Context, pick: _PythonPick, confirm: Confirm) -> _PythonPick:
    assert ctx.ot_dir is not None
    pyenv = ctx.probe.pyenv()
    if pick.version is None:
        packages = " ".join(DATA["apt_build_packages"])
        if not confirm(
            f"pyenv has no Python OneTrainer accepts. Build {DATA['default_python']} with "
            f"`pyenv install {DATA['default_python']}` (minutes; needs: sudo apt install {packages})?"
        ):
            raise UserError(
                f"no suitable Python; run: sudo apt install {packages} && pyenv install {DATA['default_python']}"
            )
        session.run("python", [pyenv.executable or "pyenv", "install", "--skip-existing", DATA["default_python"]])
        ctx.forget()
        pick = _pick_python(ctx)
        if pick.version is None:
            raise UserError("pyenv install finished but no accepted Python is installed")
    if not pick.pinned:
        session.run("python", [pyenv.executable or "pyenv", "local", pick.version], cwd=ctx.ot_dir)
        pick = _PythonPick(pick.version, pick.prefix, True, f".python-version selects {pick.version}")
    return pick


# The repairs ----------------------------------------------------------------------------------------
def pin_python(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """No `.python-version` (or one naming a missing/unsupported Python): `pyenv local X`."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    pick = _pick_python(ctx)
    if pick.pinned:
        return FixOutcome(check.id, False, f"nothing to do: {pick.reason}")
    cmds = _pin_commands(ctx, pick)
    if dry_run:
        return FixOutcome(
            check.id,
            False,
            f"pin Python {pick.version or DATA['default_python']} in the checkout ({pick.reason})",
            tuple(cmds),
        )

    def action(session: Session) -> str:
        done = _do_pin(session, ctx, pick, confirm)
        return f"{done.reason} (wrote {ctx.ot_dir / '.python-version'})"

    return _run(check, ctx, action)


def rebuild_venv(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """The venv was made by a wrong or vanished Python (or is broken): make it again from the right one."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    pick = _pick_python(ctx)
    venv = _venv(ctx)
    file, why, blocker = _platform_file(ctx)
    if blocker:
        return FixOutcome(check.id, False, f"cannot rebuild: {blocker}")
    python_exe = (pick.prefix or Path("~/.pyenv/versions") / DATA["default_python"]) / "bin" / "python"
    cmds = ([] if pick.pinned else _pin_commands(ctx, pick)) + rebuild_commands(python_exe, venv, ctx.ot_dir, file)
    if dry_run:
        return FixOutcome(
            check.id,
            False,
            f"rebuild {venv} from Python {pick.version or DATA['default_python']} with {file} ({why})",
            tuple(cmds),
        )

    def action(session: Session) -> str:
        done = _do_pin(session, ctx, pick, confirm)
        assert done.prefix is not None and ctx.ot_dir is not None
        message = _rebuild(session, done.prefix / "bin" / "python", done.prefix, venv, ctx.ot_dir, file)
        record_requirements(ctx.ot_dir, file)
        return message + f" and installed requirements-global.txt + {file}"

    return _run(check, ctx, action)


def _reinstall_torch(check: Any, ctx: Context, dry_run: bool, file: str, why: str, headline: str) -> FixOutcome:
    assert ctx.ot_dir is not None
    venv = _venv(ctx)
    vpy = venv_python(venv)
    cmds = [
        quote([vpy, "-m", "pip", "uninstall", "-y", "torch", "torchvision"]),
        f"cd {quote([ctx.ot_dir])} && "
        + quote(
            [
                vpy,
                "-m",
                "pip",
                "install",
                "--upgrade",
                "--upgrade-strategy",
                "eager",
                "-r",
                "requirements-global.txt",
                "-r",
                file,
            ]
        ),
    ]
    if dry_run:
        return FixOutcome(check.id, False, f"{headline}: reinstall torch from {file} ({why})", tuple(cmds))

    def action(session: Session) -> str:
        session.run("requirements", [vpy, "-m", "pip", "uninstall", "-y", "torch", "torchvision"])
        install_requirements(session, "requirements", venv, ctx.ot_dir, file)
        record_requirements(ctx.ot_dir, file)
        return f"reinstalled torch from {file} ({why})"

    return _run(check, ctx, action)


def reinstall_platform_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """A CPU torch on an NVIDIA machine (or a torch for the wrong platform): reinstall the platform file."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    file, why, blocker = _platform_file(ctx)
    if blocker:
        return FixOutcome(check.id, False, f"cannot fix automatically: {blocker}")
    return _reinstall_torch(check, ctx, dry_run, file, why, "torch is missing, broken or built for another platform")


def use_legacy_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """The driver is too old for the cu130 build: switch to the legacy (cu126) requirements.

    A GPU that needs CUDA >= 12.8 (sm_120) cannot use the legacy build: then the only fix is a
    newer driver, said as manual steps.
    """
    if ctx.ot_dir is None:
        return _no_checkout(check)
    gpu = detect_gpu(ctx.probe)
    driver_step = "update the NVIDIA driver to 580.65.06 or newer (Ubuntu: sudo ubuntu-drivers install; then reboot)"
    if any(c >= (12, 0) for c in gpu.compute_caps):
        return FixOutcome(
            check.id,
            False,
            f"{', '.join(gpu.names) or 'this GPU'} needs a CUDA 12.8+ build; the legacy requirements "
            f"(CUDA 12.6) cannot run it: {driver_step}",
            (driver_step,),
        )
    legacy = DATA["platform_files"]["cuda-legacy"]
    if not (ctx.ot_dir / legacy).is_file():
        return FixOutcome(check.id, False, f"this checkout has no {legacy}: {driver_step}", (driver_step,))
    drv = f"driver {gpu.driver_version}" if gpu.driver_version else "the driver"
    cuda = f"CUDA {gpu.driver_cuda[0]}.{gpu.driver_cuda[1]}" if gpu.driver_cuda else "an older CUDA"
    return _reinstall_torch(
        check,
        ctx,
        dry_run,
        legacy,
        f"{drv} supports {cuda}; or {driver_step} to keep cu130",
        "the driver is too old for the cu130 build",
    )


def update_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """Requirements out of date after `git pull` (without update.sh): what update.sh installs."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    venv = _venv(ctx)
    file = installed_platform_file(ctx.ot_dir)
    why = "the file the last install used"
    if file is None or not (ctx.ot_dir / file).is_file():
        file, why, blocker = _platform_file(ctx)
        if blocker:
            return FixOutcome(check.id, False, f"cannot fix automatically: {blocker}")
    vpy = venv_python(venv)
    cmds = [
        quote(
            [vpy, "-m", "pip", "install", "--upgrade", "--upgrade-strategy", "eager", "pip", setuptools_pin(ctx.ot_dir)]
        ),
        f"cd {quote([ctx.ot_dir])} && "
        + quote(
            [
                vpy,
                "-m",
                "pip",
                "install",
                "--upgrade",
                "--upgrade-strategy",
                "eager",
                "-r",
                "requirements-global.txt",
                "-r",
                file,
            ]
        ),
    ]
    if dry_run:
        return FixOutcome(
            check.id,
            False,
            f"install what the checkout's requirements name now, as ./update.sh does ({file}: {why})",
            tuple(cmds),
        )

    def action(session: Session) -> str:
        from otdoctor.install.installer import upgrade_pip

        upgrade_pip(session, "pip", venv, ctx.ot_dir)
        install_requirements(session, "requirements", venv, ctx.ot_dir, file)
        unmet = unmet_requirements(requirement_files(ctx.ot_dir, file), venv_dists(ctx.probe, venv) or {})
        if unmet:
            raise UserError("pip finished but these are still not satisfied: " + "; ".join(unmet[:3]))
        record_requirements(ctx.ot_dir, file)
        return f"installed requirements-global.txt + {file} as the checkout names them now"

    return _run(check, ctx, action)


def _broken_editables(ctx: Context, venv: Path) -> list[Path]:
    src = venv / "src"
    if not src.is_dir():
        return []
    broken = []
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        head = ctx.probe.git(d, "rev-parse", "--verify", "-q", "HEAD")
        top = ctx.probe.git(d, "rev-parse", "--show-toplevel")
        if not head.ok or not top.ok or Path(top.stdout.strip()).resolve() != d.resolve():
            broken.append(d)
    return broken


def repair_editables(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """A broken editable checkout in venv/src (pip's IndexError in vcs/git.py): remove it, reinstall."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    if ctx.probe.which("git") is None:
        return FixOutcome(
            check.id,
            False,
            "git is not installed; pip needs it for the editable dependencies: sudo apt install git",
            ("sudo apt install git",),
        )
    venv = _venv(ctx)
    broken = _broken_editables(ctx, venv)
    file = installed_platform_file(ctx.ot_dir) or _platform_file(ctx)[0]
    vpy = venv_python(venv)
    cmds = [f"rm -rf {quote([d])}" for d in broken] + [
        f"cd {quote([ctx.ot_dir])} && "
        + quote(
            [
                vpy,
                "-m",
                "pip",
                "install",
                "--upgrade",
                "--upgrade-strategy",
                "eager",
                "-r",
                "requirements-global.txt",
                "-r",
                file,
            ]
        )
    ]
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
        install_requirements(session, "requirements", venv, ctx.ot_dir, file)
        record_requirements(ctx.ot_dir, file)
        return f"removed {names} from {venv / 'src'} and reinstalled the requirements"

    return _run(check, ctx, action)


def pin_setuptools(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """setuptools >= 82 dropped pkg_resources: install the launcher's pin (81.0.0)."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    venv = _venv(ctx)
    pin = setuptools_pin(ctx.ot_dir)
    cmd = [venv_python(venv), "-m", "pip", "install", pin]
    if dry_run:
        return FixOutcome(check.id, False, f"install {pin} in the venv, as OneTrainer's launcher does", (quote(cmd),))

    def action(session: Session) -> str:
        session.run("pip", cmd, cwd=ctx.ot_dir)
        return f"installed {pin}"

    return _run(check, ctx, action)


def _can_sudo(ctx: Context) -> tuple[list[str] | None, str]:
    """How to run apt: directly as root, `sudo -n` when it needs no password, else not at all."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return [], "running as root"
    if ctx.probe.which("sudo") and ctx.probe.run(["sudo", "-n", "true"], timeout_s=5).ok:
        return ["sudo", "-n"], "sudo without a password"
    return None, "apt needs root: run the apt line yourself, then `otdoctor fix` again"


def rebuild_python(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """Stdlib modules missing from a pyenv Python: build packages (apt, where allowed),
    `pyenv install --force`, then rebuild the venv against the complete Python."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    pick = _pick_python(ctx)
    if pick.version is None:
        return pin_python(check, ctx, confirm, dry_run)
    packages = list(DATA["apt_build_packages"])
    pyenv = ctx.probe.pyenv()
    sudo, sudo_why = _can_sudo(ctx)
    apt_allowed = sudo is not None and ctx.probe.which("apt-get") is not None
    venv = _venv(ctx)
    file, why, _ = _platform_file(ctx)
    cmds = [f"sudo apt-get install -y {' '.join(packages)}", f"pyenv install --force {pick.version}"]
    cmds += rebuild_commands(pick.prefix / "bin" / "python", venv, ctx.ot_dir, file) if pick.prefix else []
    if dry_run:
        note = "" if apt_allowed else f" (apt: {sudo_why})"
        return FixOutcome(
            check.id,
            False,
            f"install the build packages, rebuild Python {pick.version} and the venv{note}",
            tuple(cmds),
        )

    def action(session: Session) -> str:
        if apt_allowed and confirm(f"Install the build packages with apt-get ({' '.join(packages)})?"):
            session.run("apt", [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages])
        elif not apt_allowed:
            session.ui.message(f"skipping apt ({sudo_why}): sudo apt-get install -y {' '.join(packages)}")
        if not confirm(f"Rebuild Python {pick.version} with `pyenv install --force {pick.version}` (several minutes)?"):
            raise UserError(f"not rebuilt; run: pyenv install --force {pick.version}")
        session.run("python", [pyenv.executable or "pyenv", "install", "--force", pick.version])
        info = ctx.probe.interpreter(pick.prefix / "bin" / "python")
        if info.ok and info.missing_stdlib:
            raise UserError(
                f"Python {pick.version} still lacks {', '.join(info.missing_stdlib)}; install: sudo apt-get install {' '.join(packages)}"
            )
        done = _do_pin(session, ctx, pick, confirm)
        message = _rebuild(session, done.prefix / "bin" / "python", done.prefix, venv, ctx.ot_dir, file)
        record_requirements(ctx.ot_dir, file)
        return f"rebuilt Python {pick.version}; {message}"

    return _run(check, ctx, action)


def download_checkpoints(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """Missing or corrupt checkpoints: run the check's own plan through `otdoctor models download`.

    A damaged file is renamed to `<name>.bad` first (never deleted: it is the user's file), then
    the catalog's copy is downloaded; lines the check marks as notes (`# ...`) stay manual.
    """
    import shlex
    import sys

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
        done = []
        for line in runnable:
            argv = shlex.split(line)
            if argv[0] == "mv":
                src, dst = Path(argv[1]), Path(argv[2])
                if src.exists() and not dst.exists():
                    os.replace(src, dst)
                    session.note(f"moved {src} to {dst}")
                    done.append(f"kept the damaged file as {dst.name}")
                continue
            exe = Path(sys.executable).parent / "otdoctor"
            cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "otdoctor.cli"]
            session.run("models", cmd + argv[1:])
            done.append(f"downloaded {argv[3] if len(argv) > 3 else 'the checkpoint'}")
        return "; ".join(done) + (f" (by hand: {'; '.join(notes)})" if notes else "")

    return _run(check, ctx, action)


def fix_pip(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """venv.pip: pip missing or broken (ensurepip), or setuptools >= 82 (the launcher's pin)."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    venv = _venv(ctx)
    vpy = venv_python(venv)
    pip_ok = ctx.probe.run([vpy, "-m", "pip", "--version"], timeout_s=60).ok
    if pip_ok:
        return pin_setuptools(check, ctx, confirm, dry_run)
    pin = setuptools_pin(ctx.ot_dir)
    cmds = [quote([vpy, "-m", "ensurepip", "--upgrade"]), quote([vpy, "-m", "pip", "install", "--upgrade", "pip", pin])]
    if dry_run:
        return FixOutcome(check.id, False, "reinstall pip into the venv, then the launcher's setuptools", tuple(cmds))

    def action(session: Session) -> str:
        session.run("pip", [vpy, "-m", "ensurepip", "--upgrade"], cwd=ctx.ot_dir)
        session.run("pip", [vpy, "-m", "pip", "install", "--upgrade", "pip", pin], cwd=ctx.ot_dir)
        return f"reinstalled pip and {pin}"

    return _run(check, ctx, action)


def sync_requirements(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """venv.requirements: damaged editable checkouts in venv/src first, then the update path."""
    if ctx.ot_dir is not None and _broken_editables(ctx, _venv(ctx)):
        return repair_editables(check, ctx, confirm, dry_run)
    return update_requirements(check, ctx, confirm, dry_run)


def fix_torch_build(check: Any, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """gpu.cuda-build: a driver too old for the venv's torch gets the legacy build (or the driver
    to install); a CPU/ROCm/wrong-arch torch gets the platform file this machine needs."""
    if ctx.ot_dir is None:
        return _no_checkout(check)
    gpu = detect_gpu(ctx.probe)
    if gpu.driver_cuda is not None and gpu.driver_cuda[0] < 13:
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
