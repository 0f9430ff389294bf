"""python.pyenv: pyenv present, initialised in this shell, and readable by this user."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from otdoctor.data import load_table
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.onetrainer.python_range import python_choice
from otdoctor.probe.files import denied

PYENV_INIT_LINES = (
    """echo 'export PYENV_ROOT="$HOME/.pyenv"' >> ~/.bashrc""",
    """echo '[[ -d $PYENV_ROOT/bin ]] && export PATH="$PYENV_ROOT/bin:$PATH"' >> ~/.bashrc""",
    """echo 'eval "$(pyenv init - bash)"' >> ~/.bashrc""",
    'exec "$SHELL"',
)


def build_packages() -> list[str]:
    return list(load_table("stdlib_packages.toml")["pyenv_build_packages"])


class Pyenv(Check):
    id = "python.pyenv"
    title = "pyenv"
    area = "python"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        choice = python_choice(ctx)
        pyenv = choice.pyenv
        why = (
            "the guide installs and pins OneTrainer's Python with pyenv (`pyenv install 3.10`, "
            "`pyenv local 3.10`); without it ./install.sh uses whatever `python` is on PATH"
        )
        if pyenv.root is None:
            found = f"; `{choice.command}` is {choice.shim_path}" if choice.shim_path else ""
            return CheckResult.warn(
                f"pyenv not found (no PYENV_ROOT, no `pyenv` on PATH, no ~/.pyenv){found}",
                expected="pyenv installed and initialised in your shell",
                why=why,
                fix=Fix(
                    "install pyenv and its build dependencies, then initialise it in your shell",
                    (
                        "sudo apt install " + " ".join(build_packages()),
                        "curl -fsSL https://pyenv.run | bash",
                        *PYENV_INIT_LINES,
                    ),
                ),
            )
        data = {
            "root": str(pyenv.root),
            "executable": pyenv.executable,
            "versions": list(pyenv.versions),
            "global": pyenv.global_version,
        }
        versions = ", ".join(pyenv.versions) or "none"
        if pyenv.unreadable:
            return _unreadable_pyenv(pyenv.root, pyenv.unreadable, data)
        if choice.via == "PATH" and choice.command == "python":
            where = f"`python` is {choice.shim_path}" if choice.shim_path else "there is no `python` on PATH"
            return CheckResult.warn(
                f"pyenv is installed at {pyenv.root} but not initialised in this shell: {where}",
                expected=f"{pyenv.root / 'shims'} first on PATH, so `python` follows .python-version",
                why="./install.sh runs `python -m venv venv`: without pyenv's shims .python-version is ignored",
                details=(f"installed versions: {versions}",),
                fix=Fix("initialise pyenv in your shell (then open a new terminal)", PYENV_INIT_LINES[2:]),
                data=data,
            )
        return CheckResult.ok(
            f"pyenv at {pyenv.root} ({len(pyenv.versions)} version(s) installed)",
            details=(f"installed versions: {versions}",),
            data=data,
        )


def _unreadable_pyenv(root: Path, places: tuple[str, ...], data: dict[str, Any]) -> CheckResult:
    quoted = " ".join(shlex.quote(p) for p in places)
    return CheckResult.warn(
        f"pyenv at {root}: " + "; ".join(denied(p) for p in places),
        expected=f"{root} readable by you (your own pyenv)",
        why="otdoctor and pyenv cannot see which Pythons are installed there, nor run them",
        fix=Fix(
            "make it yours again (it belongs to another user or lost its permissions), or point PYENV_ROOT "
            "at your own pyenv",
            (f"ls -ld {quoted}", f'sudo chown -R "$USER" {shlex.quote(str(root))}'),
        ),
        data={**data, "unreadable": list(places)},
    )
