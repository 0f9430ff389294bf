"""What the repairs in repairs.py share: their session and log, the venv and checkout they work
on, which Python and which platform file they use, and turning a failed command into an outcome."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.data import load_table
from otdoctor.engine.check import Context
from otdoctor.engine.results import FixOutcome
from otdoctor.errors import UserError
from otdoctor.install.pip import install_requirements, record_requirements, requirements_argv
from otdoctor.install.session import PhaseFailed, QuietUI, Session, quote
from otdoctor.onetrainer.platforms import choose_platform
from otdoctor.probe.python import match_installed, venv_python

Confirm = Callable[[str], bool]
FIX_LOG = "otdoctor-fix.log"
UNINSTALL_TORCH = ("-m", "pip", "uninstall", "-y", "torch", "torchvision")


def guide_python() -> str:
    return str(load_table("install.toml")["default_python"])


def build_packages() -> list[str]:
    return list(load_table("install.toml")["apt_build_packages"])


def session_for(ctx: Context) -> Session:
    # Without a checkout (a checkpoint fix with only --models-dir) the log goes to otdoctor's cache.
    from otdoctor.probe.files import cache_dir

    ui = ctx.options.extra.get("ui") or QuietUI()
    log_dir = ctx.ot_dir if ctx.ot_dir is not None else cache_dir(ctx.probe.env)
    log_dir.mkdir(parents=True, exist_ok=True)
    return Session(ctx.probe, ui, log_dir / FIX_LOG)


def venv_of(ctx: Context) -> Path:
    assert ctx.ot_dir is not None
    name = ctx.probe.env.get("OT_PYTHON_VENV") or "venv"
    p = Path(name).expanduser()
    return p if p.is_absolute() else ctx.ot_dir / p


def no_checkout(check: Any) -> FixOutcome:
    return FixOutcome(check.id, False, "no OneTrainer checkout to repair: run `otdoctor install` first")


def run_repair(check: Any, ctx: Context, action: Callable[[Session], str]) -> FixOutcome:
    """Run a repair's action; a failed command becomes an unapplied outcome naming the log."""
    session = session_for(ctx)
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


def platform_file(ctx: Context) -> tuple[str, str, str | None]:
    """(file, why, blocker): what this machine needs, honouring OT_PLATFORM_REQUIREMENTS."""
    choice = choose_platform(ctx.probe, "auto")
    return choice.file, choice.reason, choice.blocker


# Which Python ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PythonPick:
    version: str | None  # an installed pyenv version name (3.10.13)
    prefix: Path | None
    pinned: bool  # .python-version in the checkout selects it
    reason: str


def _accepted(version: str, ot_dir: Path) -> bool:
    from packaging.version import InvalidVersion, Version

    from otdoctor.onetrainer.checkout import python_range
    from otdoctor.onetrainer.python_range import python_data

    lo, hi, _ = python_range(ot_dir)
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    base = Version(f"{v.major}.{v.minor}")
    rejected = {Version(r).release for r in python_data()["rejected"]}
    return Version(lo) <= base < Version(hi) and v.release[:3] not in rejected


def pick_python(ctx: Context) -> PythonPick:
    """The checkout's pinned pyenv Python when it is installed and accepted; else the best installed one.

    Preference: the guide's 3.10, then the newest accepted version pyenv has.
    """
    from packaging.version import InvalidVersion, Version

    ot_dir = ctx.ot_dir
    assert ot_dir is not None
    pyenv = ctx.probe.pyenv()
    req = ctx.probe.python_request(ot_dir)
    pinned_here = req.source == str(ot_dir / ".python-version")
    if pinned_here and req.prefix is not None and _accepted(req.prefix.name, ot_dir):
        return PythonPick(req.prefix.name, req.prefix, True, f".python-version selects {req.prefix.name}")
    guide = match_installed(pyenv, guide_python())
    if guide is not None and _accepted(guide.name, ot_dir):
        return PythonPick(guide.name, guide, False, f"the guide's Python {guide_python()}")
    accepted = []
    for v in pyenv.versions:
        try:
            if _accepted(v, ot_dir):
                accepted.append((Version(v), v))
        except InvalidVersion:
            continue
    if accepted:
        name = max(accepted)[1]
        assert pyenv.root is not None
        return PythonPick(name, pyenv.root / "versions" / name, False, "the newest accepted Python pyenv has")
    return PythonPick(None, None, False, "pyenv has no Python OneTrainer accepts")


def pin_commands(ctx: Context, pick: PythonPick) -> list[str]:
    assert ctx.ot_dir is not None
    cmds = []
    if pick.version is None:
        cmds.append(f"pyenv install {guide_python()}")
    cmds.append(f"cd {quote([ctx.ot_dir])} && pyenv local {pick.version or guide_python()}")
    return cmds


def do_pin(session: Session, ctx: Context, pick: PythonPick, confirm: Confirm) -> PythonPick:
    """Install the guide's Python when none fits (after asking), then `pyenv local` it in the checkout."""
    pyenv = ctx.probe.pyenv()
    if pick.version is None:
        packages = " ".join(build_packages())
        guide = guide_python()
        if not confirm(
            f"pyenv has no Python OneTrainer accepts. Build {guide} with "
            f"`pyenv install {guide}` (minutes; needs: sudo apt install {packages})?"
        ):
            raise UserError(f"no suitable Python; run: sudo apt install {packages} && pyenv install {guide}")
        session.run("python", [pyenv.executable or "pyenv", "install", "--skip-existing", guide])
        ctx.forget()
        pick = pick_python(ctx)
        if pick.version is None:
            raise UserError("pyenv install finished but no accepted Python is installed")
    if not pick.pinned:
        session.run("python", [pyenv.executable or "pyenv", "local", pick.version], cwd=ctx.ot_dir)
        pick = PythonPick(pick.version, pick.prefix, True, f".python-version selects {pick.version}")
    return pick


def can_sudo(ctx: Context) -> tuple[list[str] | None, str]:
    """How to run apt: directly as root, `sudo -n` when it needs no password, else not at all."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return [], "running as root"
    if ctx.probe.which("sudo") and ctx.probe.run(["sudo", "-n", "true"], timeout_s=5).ok:
        return ["sudo", "-n"], "sudo without a password"
    return None, "apt needs root: run the apt line yourself, then `otdoctor fix` again"


def broken_editables(ctx: Context, venv: Path) -> list[Path]:
    """pip's own clones in venv/src that git no longer recognises as checkouts."""
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


def in_checkout(ot_dir: Path, argv: list[str]) -> str:
    """A command line run in the checkout: `cd DIR && ARGV`."""
    return f"cd {quote([ot_dir])} && " + quote(argv)


def reinstall_python(
    session: Session, ctx: Context, version: str, prefix: Path, packages: list[str], confirm: Confirm
) -> None:
    if not confirm(f"Rebuild Python {version} with `pyenv install --force {version}` (several minutes)?"):
        raise UserError(f"not rebuilt; run: pyenv install --force {version}")
    session.run("python", [ctx.probe.pyenv().executable or "pyenv", "install", "--force", version])
    info = ctx.probe.interpreter(prefix / "bin" / "python")
    if info.ok and info.missing_stdlib:
        raise UserError(
            f"Python {version} still lacks {', '.join(info.missing_stdlib)}; "
            f"install: sudo apt-get install {' '.join(packages)}"
        )


def run_download_line(session: Session, line: str) -> str | None:
    """One line of a checkpoint fix: `mv DAMAGED DAMAGED.bad` or `otdoctor models download ...`."""
    import shlex
    import sys

    argv = shlex.split(line)
    if argv[0] == "mv":
        src, dst = Path(argv[1]), Path(argv[2])
        if src.exists() and not dst.exists():
            os.replace(src, dst)
            session.note(f"moved {src} to {dst}")
            return f"kept the damaged file as {dst.name}"
        return None
    exe = Path(sys.executable).parent / "otdoctor"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "otdoctor.cli"]
    session.run("models", cmd + argv[1:])
    return f"downloaded {argv[3] if len(argv) > 3 else 'the checkpoint'}"


def reinstall_torch(check: Any, ctx: Context, dry_run: bool, file: str, why: str, headline: str) -> FixOutcome:
    """Uninstall torch and install the requirements with FILE as the platform file."""
    ot_dir = ctx.ot_dir
    assert ot_dir is not None
    venv = venv_of(ctx)
    uninstall = [str(venv_python(venv)), *UNINSTALL_TORCH]
    cmds = [quote(uninstall), in_checkout(ot_dir, requirements_argv(venv, file))]
    if dry_run:
        return FixOutcome(check.id, False, f"{headline}: reinstall torch from {file} ({why})", tuple(cmds))

    def action(session: Session) -> str:
        session.run("requirements", uninstall)
        install_requirements(session, "requirements", venv, ot_dir, file)
        record_requirements(ot_dir, file)
        return f"reinstalled torch from {file} ({why})"

    return run_repair(check, ctx, action)
