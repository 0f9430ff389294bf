"""`otdoctor install`: a correct OneTrainer install, re-runnable after any interruption.

Phases, in order: preflight (read-only), checkout, python, venv, pip, requirements, then
`otdoctor check` on the result. Each phase verifies the machine first and does nothing when its
result is already there, so running the command again after Ctrl-C, a kill or a lost network
continues where it stopped. A state file records what finished (and the requirements' hash),
but every phase is verified on disk, never trusted from the state alone.

The whole command (pre-flight, plan, confirmation, phases, final check) is `run.run_install`.
The building blocks (`Session` in session.py, the venv in venv.py, pip in pip.py) serve the
repairs of `otdoctor fix` too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.install import git, preflight, state
from otdoctor.install.pip import (
    install_requirements,
    requirement_files,
    requirements_hash,
    setuptools_pin,
    unmet_requirements,
    upgrade_pip,
    venv_dists,
)
from otdoctor.install.plan import PlanStep, build_plan
from otdoctor.install.python_pin import install_request
from otdoctor.install.session import PHASE_TITLES, InstallUI, PhaseFailed, Session
from otdoctor.install.state import LOG_NAME, PHASES, STATE_NAME
from otdoctor.install.venv import create_venv, remove_superseded_venvs, set_aside, venv_problem
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS, PlatformChoice
from otdoctor.probe import Probe
from otdoctor.probe.python import match_installed, pinned_version
from otdoctor.redact import redact

if TYPE_CHECKING:
    from otdoctor.engine.results import Report

# What the install's last step looks at: the machine and the install, not a training config.
FINAL_CHECK_AREAS = ("onetrainer", "python", "venv", "gpu", "system")


@dataclass
class InstallOptions:
    dir: Path | None = None
    repo_url: str | None = None
    ref: str | None = None
    python: str | None = None
    platform: str = "auto"
    dry_run: bool = False
    yes: bool = False


def _install_dir(probe: Probe, opts: InstallOptions) -> Path:
    raw_dir = opts.dir or Path(load_table("install.toml")["default_dir"].replace("~", str(probe.home), 1))
    folder = Path(raw_dir).expanduser()
    if not folder.is_absolute():
        folder = probe.cwd / folder
    return Path(os.path.normpath(folder))


def _repo_url(probe: Probe, opts: InstallOptions) -> str:
    url: str = opts.repo_url or load_table("install.toml")["repo_url"]
    if "://" not in url and not re.match(r"^[\w.-]+@", url):
        local = Path(url).expanduser()
        url = str(local if local.is_absolute() else (probe.cwd / local).resolve())
    return url


class Installer:
    def __init__(self, probe: Probe, opts: InstallOptions, ui: InstallUI) -> None:
        self.probe = probe
        self.opts = opts
        self.ui = ui
        self.dir = _install_dir(probe, opts)
        self.repo_url = _repo_url(probe, opts)
        self.python_request = opts.python or load_table("install.toml")["default_python"]
        self.log_path = self.dir / LOG_NAME
        self.state_path = self.dir / STATE_NAME
        self.venv = self.dir / (probe.env.get("OT_PYTHON_VENV") or "venv")
        self.session = Session(probe, ui, None if opts.dry_run else self.log_path)
        self.platform: PlatformChoice | None = None
        self.pyenv = probe.pyenv()

    # State --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return state.read_state(self.dir)

    def save_phase(self, phase: str, **facts: Any) -> None:
        state.save_phase(self.dir, phase, redact(self.repo_url), **facts)

    # Before anything runs ---------------------------------------------------------------------------
    def preflight(self) -> list[str]:
        """Refuse early, before anything is touched. Returns warnings worth showing."""
        return preflight.preflight(self)

    def plan(self) -> list[PlanStep]:
        return build_plan(self)

    # Phase checks (read-only) -------------------------------------------------------------------
    def checkout_problem(self) -> str | None:
        return git.checkout_problem(self)

    def python_prefix(self) -> Path | None:
        return match_installed(self.pyenv, self.python_request)

    def python_problem(self) -> str | None:
        prefix = self.python_prefix()
        if prefix is None:
            return f"Python {self.python_request} is not installed in pyenv"
        # What .python-version selects; PYENV_VERSION (`pyenv shell`) overrides it in this shell only.
        req = pinned_version(self.pyenv, self.dir)
        if not (self.dir / ".python-version").is_file():
            return f"no .python-version in the checkout yet (it will select {prefix.name})"
        if req.prefix is None or req.prefix.resolve() != prefix.resolve() or not req.source.endswith(".python-version"):
            return f".python-version does not select {prefix.name}"
        if Path(req.source).parent.resolve() != self.dir.resolve():
            return f".python-version comes from {req.source}, not the checkout"
        return None

    def pip_problem(self) -> str | None:
        dists = venv_dists(self.probe, self.venv)
        if dists is None:
            return "the venv's interpreter does not run"
        want = setuptools_pin(self.dir).split("==", 1)[1]
        if dists.get("setuptools") != want:
            return f"setuptools {dists.get('setuptools', 'missing')}, not {want}"
        return None

    def requirements_problem(self) -> str | None:
        assert self.platform is not None
        files = requirement_files(self.dir, self.platform.file)
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            return f"{', '.join(missing)} missing from the checkout"
        recorded = self.state().get("phases", {}).get("requirements", {})
        if recorded.get("hash") != requirements_hash(self.dir, self.platform.file):
            return "not installed from these requirement files yet"
        dists = venv_dists(self.probe, self.venv)
        if dists is None:
            return "the venv's interpreter does not run"
        unmet = unmet_requirements(files, dists)
        if unmet:
            return f"{len(unmet)} requirement(s) not satisfied: {unmet[0]}"
        return None

    # Running ----------------------------------------------------------------------------------------
    def run(self) -> list[PlanStep]:
        """Every phase that is not already done, in order. Returns the plan as it stood."""
        steps = self.plan()
        if self.opts.dry_run:
            return steps
        try:
            self._phase("checkout")
            git.do_checkout(self)
            if not self.opts.python:  # the checkout's launcher may recommend a newer Python than the guide's
                self.python_request = install_request(self.pyenv, self.dir, self.python_request)
            preflight.validate_python_request(self, preflight.python_range(self))  # the checkout's own range now
            self._do_python()
            self._do_venv()
            self._do_pip()
            self._do_requirements()
        finally:
            self.session.close()
        return steps

    def _phase(self, name: str) -> None:
        self.ui.phase(name, PHASE_TITLES[name])
        self.session.note(f"--- phase {name}")

    def _do_python(self) -> None:
        self._phase("python")
        if self.python_prefix() is None:
            self._build_python()
        prefix = self.python_prefix()
        if prefix is None:
            raise PhaseFailed("python", f"pyenv has no {self.python_request} after installing it", (), self.log_path)
        if self.python_problem() is not None:
            self.session.run("python", [self.pyenv.executable or "pyenv", "local", prefix.name], cwd=self.dir)
        problem = self.python_problem()
        if problem:
            raise PhaseFailed("python", problem, (), self.log_path)
        self.save_phase("python", version=prefix.name)
        self.ui.done("python", f".python-version selects {prefix.name}")

    def _build_python(self) -> None:
        packages = " ".join(load_table("install.toml")["apt_build_packages"])
        question = (
            f"Python {self.python_request} is not installed in pyenv. Build it now with `pyenv install "
            f"{self.python_request}` (several minutes; needs the build packages: sudo apt install {packages})?"
        )
        if not (self.opts.yes or self.ui.confirm(question)):
            raise UserError(
                f"Python {self.python_request} is not installed in pyenv",
                hint=f"sudo apt install {packages} && pyenv install {self.python_request}, then run this again",
            )
        self.session.run(
            "python", [self.pyenv.executable or "pyenv", "install", "--skip-existing", self.python_request]
        )
        self.pyenv = self.probe.pyenv()

    def _do_venv(self) -> None:
        self._phase("venv")
        prefix = self.python_prefix()
        assert prefix is not None
        python_exe = prefix / "bin" / "python"
        problem = venv_problem(self.probe, self.venv, prefix)
        if problem is None:
            self.save_phase("venv", python=str(python_exe))
            self.ui.done("venv", f"reusing {self.venv}")
            return
        aside = set_aside(self.venv, self.dir)
        if aside is not None:
            self.ui.message(f"moved the unusable venv ({problem}) to {aside}; it is removed once the new one works")
        state.forget_phases_from(self.dir, "venv")
        create_venv(self.session, "venv", python_exe, self.venv, self.dir)
        problem = venv_problem(self.probe, self.venv, prefix)
        if problem:
            raise PhaseFailed("venv", problem, (), self.log_path)
        self.save_phase("venv", python=str(python_exe))
        self.ui.done("venv", f"{self.venv} from {python_exe}")

    def _do_pip(self) -> None:
        self._phase("pip")
        ran = self.pip_problem() is not None
        if ran:
            upgrade_pip(self.session, "pip", self.venv, self.dir)
        problem = self.pip_problem()
        if problem:
            raise PhaseFailed("pip", problem, (), self.log_path)
        self.save_phase("pip", setuptools=setuptools_pin(self.dir))
        # Say only what happened: a re-run that found everything in place changed nothing.
        pin = setuptools_pin(self.dir)
        self.ui.done("pip", f"pip upgraded, {pin}" if ran else f"already in place: {pin}; nothing to do")

    def _do_requirements(self) -> None:
        platform = self.platform
        assert platform is not None
        self._phase("requirements")
        self.ui.message(f"platform: {platform.file} ({platform.reason})")
        ran = self.requirements_problem() is not None
        if ran:
            install_requirements(self.session, "requirements", self.venv, self.dir, platform.file)
            dists = venv_dists(self.probe, self.venv) or {}
            unmet = unmet_requirements(requirement_files(self.dir, platform.file), dists)
            if unmet:
                why = "pip finished but requirements are not satisfied: " + "; ".join(unmet[:3])
                raise PhaseFailed("requirements", why, (), self.log_path)
        self.save_phase(
            "requirements", hash=requirements_hash(self.dir, platform.file), file=platform.file, platform=platform.key
        )
        # The new venv works: only now may the ones moved aside go.
        remove_superseded_venvs(self.dir)
        files = f"{GLOBAL_REQUIREMENTS} + {platform.file}"
        self.ui.done("requirements", f"installed {files}" if ran else f"already satisfied: {files}; nothing to do")


def final_check(probe: Probe, ot_dir: Path) -> Report:
    """`otdoctor check --ot-dir DIR` limited to the install's areas (torch imports, CUDA where a GPU
    is, tkinter): config, dataset and checkpoints belong to planning a run, not to the install."""
    from otdoctor.engine.doctor import make_context, run_doctor
    from otdoctor.engine.registry import load_checks

    present = {c.area for c in load_checks()[0]}
    ctx = make_context(probe, ot_dir)
    return run_doctor(ctx, only=[a for a in FINAL_CHECK_AREAS if a in present])


__all__ = ["PHASES", "InstallOptions", "Installer", "PlanStep", "final_check"]
