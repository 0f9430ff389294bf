"""The install's plan: each phase, whether it is already done, and the commands it would run.

A phase after one still to do is not looked at (it is "after the checkout", "after the venv"...):
what it finds would change once the earlier phase ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from otdoctor.data import load_table
from otdoctor.install import git
from otdoctor.install.mirrors import shell_prefix
from otdoctor.install.pip import requirements_argv, setuptools_pin, upgrade_pip_argv
from otdoctor.install.session import quote
from otdoctor.install.venv import aside_command, venv_problem
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS

if TYPE_CHECKING:
    from otdoctor.install.installer import Installer


@dataclass
class PlanStep:
    phase: str
    done: bool
    summary: str
    commands: list[str] = field(default_factory=list)


def _step(phase: str, problem: str | None, done_summary: str, commands: list[str]) -> PlanStep:
    return PlanStep(phase, problem is None, problem or done_summary, [] if problem is None else commands)


def build_plan(inst: Installer) -> list[PlanStep]:
    assert inst.platform is not None
    problem = git.checkout_problem(inst)
    git_cmds = [shell_prefix(inst.probe.env, pip=False) + c for c in git.checkout_commands(inst)]
    steps = [_step("checkout", problem, f"{inst.dir} is a checkout of {inst.repo_url}", git_cmds)]
    pending = problem is not None
    prefix = inst.python_prefix()
    steps.append(_python_step(inst, pending, prefix))
    pending = pending or not steps[-1].done
    steps.append(_venv_step(inst, pending, prefix))
    pending = pending or not steps[-1].done
    steps.append(_pip_step(inst, pending))
    pending = pending or not steps[-1].done
    r_problem = "after pip" if pending else inst.requirements_problem()
    pip_argv = shell_prefix(inst.probe.env) + quote(requirements_argv(inst.venv, inst.platform.file))
    cmd = f"cd {quote([inst.dir])} && {pip_argv}"
    steps.append(_step("requirements", r_problem, f"{GLOBAL_REQUIREMENTS} + {inst.platform.file} installed", [cmd]))
    return steps


def _python_exe(inst: Installer, prefix: Path | None) -> Path:
    version = prefix.name if prefix else inst.python_request
    return (prefix or (inst.pyenv.root or Path("~/.pyenv")) / "versions" / version) / "bin" / "python"


def _python_step(inst: Installer, pending: bool, prefix: Path | None) -> PlanStep:
    version = prefix.name if prefix else inst.python_request
    problem = inst.python_problem() if not pending else "after the checkout"
    cmds = []
    if prefix is None:
        packages = " ".join(load_table("install.toml")["apt_build_packages"])
        cmds.append(f"pyenv install {quote([inst.python_request])}   # needs: sudo apt install {packages}")
    cmds.append(f"cd {quote([inst.dir])} && pyenv local {version}")
    return _step("python", problem, f".python-version selects {version}", cmds)


def _venv_step(inst: Installer, pending: bool, prefix: Path | None) -> PlanStep:
    python_exe = _python_exe(inst, prefix)
    problem = "after the Python" if pending else venv_problem(inst.probe, inst.venv, prefix)
    cmds = []
    if problem and os.path.lexists(inst.venv):
        cmds.append(aside_command(inst.venv) + "   # removed once the new venv works")
    cmds.append(quote([python_exe, "-m", "venv", inst.venv]))
    return _step("venv", problem, f"{inst.venv} from {python_exe}", cmds)


def _pip_step(inst: Installer, pending: bool) -> PlanStep:
    problem = "after the venv" if pending else inst.pip_problem()
    pin = setuptools_pin(inst.dir)  # otdoctor's default until the checkout's launcher says otherwise
    return _step(
        "pip",
        problem,
        f"pip up to date, {pin}",
        [shell_prefix(inst.probe.env) + quote(upgrade_pip_argv(inst.venv, inst.dir))],
    )
