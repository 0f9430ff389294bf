"""OneTrainer's venv: is it usable, make it, and rebuild it without ever leaving the user with less.

A venv in the way is renamed aside (`venv.otdoctor-old-<time>`), recorded in the state file, and
removed only once its replacement works, by this run or, after a kill, by the next one.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from otdoctor.errors import UserError
from otdoctor.install import state
from otdoctor.install.pip import install_requirements, requirements_argv, upgrade_pip, upgrade_pip_argv
from otdoctor.install.session import Session, quote
from otdoctor.probe import Probe
from otdoctor.probe.python import InterpreterInfo, read_pyvenv_cfg, venv_python

ASIDE_MARK = ".otdoctor-old-"


def venv_problem(probe: Probe, venv: Path, python_prefix: Path | None) -> str | None:
    """Why this venv is not usable as built from `python_prefix` (None: it is fine)."""
    if not (venv / "bin" / "activate").is_file():
        return f"{venv} has no bin/activate"
    info: InterpreterInfo = probe.interpreter(venv_python(venv))
    if not info.ok:
        return f"its interpreter does not run ({info.error})"
    if python_prefix is not None:
        home = read_pyvenv_cfg(venv).get("home", "")
        if Path(home).resolve() != (python_prefix / "bin").resolve():
            return f"it was made from {home or 'an unknown Python'}, not {python_prefix / 'bin'}"
    pip = probe.run([venv_python(venv), "-m", "pip", "--version"], timeout_s=30)
    if not pip.ok:
        return "pip does not run inside it"
    return None


def set_pyvenv_home(venv: Path, new_home: Path) -> Path:
    """Point pyvenv.cfg's `home` (and `executable`, where present) at `new_home`; other lines stay.

    The repair for a venv whose base Python moved while its own python still runs: no rebuild.
    """
    from otdoctor.probe.files import atomic_write_text

    cfg = venv / "pyvenv.cfg"
    out = []
    for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "home":
            line = f"home = {new_home}"
        elif key.strip().lower() == "executable":
            line = f"executable = {new_home / Path(value.strip()).name}"
        out.append(line)
    atomic_write_text(cfg, "\n".join(out) + "\n")
    return cfg


def create_venv(session: Session, phase: str, python_exe: Path, venv: Path, cwd: Path) -> None:
    session.run(phase, [python_exe, "-m", "venv", venv], cwd=cwd)


def move_aside(venv: Path) -> Path:
    """Rename a venv out of the way; it is removed only after its replacement works."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = venv.with_name(f"{venv.name}{ASIDE_MARK}{stamp}")
    n = 1
    while aside.exists():
        aside = venv.with_name(f"{venv.name}{ASIDE_MARK}{stamp}-{n}")
        n += 1
    os.replace(venv, aside)
    return aside


def set_aside(venv: Path, ot_dir: Path) -> Path | None:
    """Move an existing venv aside and record it in the state file; None when there was none."""
    if not os.path.lexists(venv):
        return None
    aside = move_aside(venv)
    state.remember_aside(ot_dir, aside)
    return aside


def put_back(session: Session, aside: Path, venv: Path, ot_dir: Path) -> None:
    """The replacement failed: drop it and restore the venv that was set aside."""
    shutil.rmtree(venv, ignore_errors=True)
    os.replace(aside, venv)
    state.forget_aside(ot_dir, aside)
    session.note(f"restored the previous venv from {aside}")


def remove_superseded_venvs(ot_dir: Path) -> None:
    """A new venv works: the ones moved aside before (this run or a killed one) can go now."""
    for aside in state.forget_aside(ot_dir):
        p = Path(aside)
        if ASIDE_MARK in p.name:  # only folders otdoctor itself named and recorded
            shutil.rmtree(p, ignore_errors=True)


def aside_command(venv: Path) -> str:
    return f"mv {quote([venv])} {quote([str(venv) + ASIDE_MARK + '<time>'])}"


def rebuild_commands(python_exe: Path, venv: Path, ot_dir: Path, platform_file: str) -> list[str]:
    """`rebuild_venv` as shell commands, for a dry run; they run as pasted from any folder (pip reads
    the requirement files relative to the checkout, as rebuild_venv runs it there)."""
    return [
        f"cd {quote([ot_dir])}",
        aside_command(venv),
        quote([python_exe, "-m", "venv", venv]),
        quote(upgrade_pip_argv(venv, ot_dir)),
        quote(requirements_argv(venv, platform_file)),
        f"rm -rf {quote([str(venv) + ASIDE_MARK + '<time>'])}   # only after the new venv works",
    ]


def rebuild_venv(
    session: Session, python_exe: Path, python_prefix: Path, venv: Path, ot_dir: Path, platform_file: str
) -> str:
    """Move the venv aside, make a new one from exactly `python_exe`, install, verify; then delete the old.

    If anything fails, the new venv is removed and the old one is put back, so the user is never
    left with less than they had. A kill mid-way leaves the old one aside and recorded in the state
    file; the next successful rebuild (or install) removes it.
    """
    aside = set_aside(venv, ot_dir)
    try:
        create_venv(session, "venv", python_exe, venv, ot_dir)
        upgrade_pip(session, "pip", venv, ot_dir)
        install_requirements(session, "requirements", venv, ot_dir, platform_file)
        problem = venv_problem(session.probe, venv, python_prefix)
        if problem:
            raise UserError(f"the rebuilt venv does not work: {problem}")
    except BaseException:
        if aside is not None:
            put_back(session, aside, venv, ot_dir)
        raise
    remove_superseded_venvs(ot_dir)
    return f"rebuilt {venv} from {python_exe}"
