"""The machinery `otdoctor fix` drives, as plain functions the checks' fixes call: the session and
log a repair runs in, the venv and checkout it works on, the platform file it installs, and the steps
(pip, the venv rebuild, torch, pip's editable checkouts, checkpoint downloads) with their command lines.

Fixes are idempotent, stream their commands' output into `otdoctor fix`'s live view and keep it whole
in `<checkout>/otdoctor-fix.log`, and never delete user data: a venv is moved aside and removed only
after its replacement works.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from otdoctor.engine.check import Context
from otdoctor.engine.results import FixOutcome
from otdoctor.errors import UserError
from otdoctor.install.pip import install_requirements, record_requirements, requirements_argv
from otdoctor.install.python_pin import Confirm, PythonPick, do_pin
from otdoctor.install.session import PhaseFailed, QuietUI, Session, quote
from otdoctor.install.venv import rebuild_venv
from otdoctor.onetrainer.platforms import choose_platform
from otdoctor.probe.python import venv_python

FIX_LOG = "otdoctor-fix.log"
UNINSTALL_TORCH = ("-m", "pip", "uninstall", "-y", "torch", "torchvision")


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


def no_checkout(check_id: str) -> FixOutcome:
    return FixOutcome(check_id, False, "no OneTrainer checkout to repair: run `otdoctor install` first")


def run_repair(check_id: str, ctx: Context, action: Callable[[Session], str]) -> FixOutcome:
    """Run a repair's action; a failed command becomes an unapplied outcome naming the log."""
    session = session_for(ctx)
    try:
        message = action(session)
    except PhaseFailed as exc:
        tail = "; ".join(exc.tail[-3:])
        return FixOutcome(
            check_id,
            False,
            f"failed: {exc.message.splitlines()[0]}"
            + (f" ({tail})" if tail else "")
            + f"; full log: {session.log_path}",
        )
    except UserError as exc:
        return FixOutcome(check_id, False, f"failed: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    finally:
        session.close()
    ctx.forget()
    return FixOutcome(check_id, True, message)


def platform_file(ctx: Context) -> tuple[str, str, str | None]:
    """(file, why, blocker): what this machine needs, honouring OT_PLATFORM_REQUIREMENTS."""
    choice = choose_platform(ctx.probe, "auto")
    return choice.file, choice.reason, choice.blocker


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


def remove_editables(session: Session, broken: list[Path]) -> None:
    for d in broken:
        # pip's own clone of a dependency, not user data; moved then removed so a kill mid-way
        # never leaves a half-deleted folder pip would choke on again.
        tmp = d.with_name(f".{d.name}.otdoctor-removing-{time.time_ns()}")
        os.replace(d, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        session.note(f"removed {d}")


def torch_uninstall_argv(venv: Path) -> list[str]:
    return [str(venv_python(venv)), *UNINSTALL_TORCH]


def torch_reinstall_commands(venv: Path, ot_dir: Path, file: str) -> list[str]:
    """Uninstall torch, then install the requirements with FILE as the platform file."""
    return [quote(torch_uninstall_argv(venv)), in_checkout(ot_dir, requirements_argv(venv, file))]


def reinstall_torch(session: Session, venv: Path, ot_dir: Path, file: str) -> None:
    session.run("requirements", torch_uninstall_argv(venv))
    install_requirements(session, "requirements", venv, ot_dir, file)
    record_requirements(ot_dir, file)


def rebuild_pinned_venv(
    session: Session, ctx: Context, pick: PythonPick, confirm: Confirm, venv: Path, file: str
) -> str:
    """Pin PICK in the checkout (installing a Python first when none fits), rebuild VENV from it and
    install the requirements with FILE; what was done, in words."""
    ot_dir = ctx.ot_dir
    assert ot_dir is not None
    done = do_pin(session, ctx, pick, confirm)
    assert done.prefix is not None
    message = rebuild_venv(session, done.prefix / "bin" / "python", done.prefix, venv, ot_dir, file)
    record_requirements(ot_dir, file)
    return message


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
