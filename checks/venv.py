"""OneTrainer's venv: it exists, its interpreter still exists and is in range, pip runs, the
installed packages match the checkout's requirements, and torch imports.

Facts come from running the venv's own interpreter (`otdoctor.onetrainer.venv_facts.venv_facts`): otdoctor never
imports anything from the venv into its own process.

venv.exists, venv.interpreter, venv.python-version and venv.pip live here; venv.requirements and
venv.torch in venv_packages.py. `CHECKS` below is the area's order in every output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome
from otdoctor.install.actions import no_checkout, platform_file, rebuild_pinned_venv, run_repair, venv_of
from otdoctor.install.pip import setuptools_pin
from otdoctor.install.python_pin import Confirm, guide_python, pick_python, pin_commands
from otdoctor.install.session import Session, quote
from otdoctor.install.venv import rebuild_commands, set_pyvenv_home
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS
from otdoctor.onetrainer.python_range import judge, parse_version, python_choice, python_data, version_matches
from otdoctor.onetrainer.venv_facts import VenvFacts, pip_facts
from otdoctor.probe.files import denied
from otdoctor.probe.python import venv_python

from .venv_common import checkout_venv, q, recreate, relative
from .venv_packages import VenvRequirements, VenvTorch


def rebuild_venv(check: Check, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """The fix of venv.exists, venv.interpreter and venv.python-version: the venv is missing, was made
    by a wrong or vanished Python, or is broken; make it again from the right one."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check.id)
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
        message = rebuild_pinned_venv(session, ctx, pick, confirm, venv, file)
        return message + f" and installed {GLOBAL_REQUIREMENTS} + {file}"

    return run_repair(check.id, ctx, action)


class VenvExists(Check):
    id = "venv.exists"
    fix = rebuild_venv
    title = "OneTrainer venv"
    area = "venv"
    requires = ("onetrainer.checkout",)

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = checkout_venv(ctx)
        rel = relative(ctx, facts.path)
        data = {"path": str(facts.path), "python": str(facts.python)}
        if facts.exists:
            return CheckResult.ok(f"{facts.path} ({rel}/bin/activate present)", data=data)
        if facts.unreadable:
            return CheckResult.fail(
                f"{denied(facts.unreadable)}, so the venv at {facts.path} cannot be used",
                expected=f"{rel} readable by you",
                why="OneTrainer runs inside its venv: a venv another user made (sudo ./install.sh) cannot be run",
                fix=Fix(
                    "make the venv yours again (it was made by another user, often with sudo)",
                    (f"ls -ld {q(facts.unreadable)}", f'sudo chown -R "$USER" {q(str(facts.path))}'),
                ),
                data={**data, "unreadable": facts.unreadable},
            )
        conda_env = ctx.ot_dir / (ctx.probe.env.get("OT_CONDA_ENV") or "conda_env") if ctx.ot_dir else None
        prefer_venv = ctx.probe.env.get("OT_PREFER_VENV", "false") == "true"
        if conda_env is not None and (conda_env / "conda-meta").is_dir() and not prefer_venv:
            return CheckResult.warn(
                f"no venv, but a conda environment at {conda_env}: OneTrainer's launcher uses that",
                expected=f"{rel}/bin/activate (otdoctor checks venvs, not conda environments)",
                why="the venv checks below cannot look inside a conda environment",
                blocks_dependents=True,
                fix=Fix(
                    "to use a venv instead, as the guide does",
                    (f"cd {q(str(ctx.ot_dir))}", "OT_PREFER_VENV=true ./install.sh"),
                ),
                data=data,
            )
        half = facts.path.is_dir()
        summary = (
            f"{facts.path} exists but has no bin/activate (a venv creation that did not finish)"
            if half
            else f"no venv at {facts.path}"
        )
        commands = (f"cd {q(str(ctx.ot_dir))}", *((f"rm -rf {q(rel)}",) if half else ()), "./install.sh")
        return CheckResult.fail(
            summary,
            expected=f"{rel}/bin/activate, made by ./install.sh",
            why="OneTrainer runs only inside its venv; the launcher creates it on the first ./install.sh",
            fix=Fix("create the venv and install OneTrainer's requirements (or run `otdoctor install`)", commands),
            data=data,
        )


def moved_home(facts: VenvFacts) -> Path | None:
    """Where the venv's python really lives, when pyvenv.cfg's `home` names a folder that is gone but
    the venv's python still runs (its link leads to the interpreter by another way): None otherwise."""
    home = facts.cfg.get("home")
    if not home or Path(home).is_dir() or facts.info is None or not facts.info.ok:
        return None
    real = Path(os.path.realpath(facts.python))
    return real.parent if real.is_file() else None


def _rewrite_command(facts: VenvFacts, new_home: Path) -> str:
    """A command that sets `home` (and `executable`, where present) in pyvenv.cfg, for any path."""
    code = (
        "import pathlib, re, sys; p = pathlib.Path(sys.argv[1]); home = pathlib.Path(sys.argv[2]); "
        'text = re.sub(r"(?m)^home[ \\t]*=.*$", lambda m: "home = " + str(home), p.read_text()); '
        'text = re.sub(r"(?m)^executable[ \\t]*=[ \\t]*(.*)$", '
        'lambda m: "executable = " + str(home / pathlib.Path(m.group(1)).name), text); p.write_text(text)'
    )
    return quote([facts.python, "-I", "-c", code, facts.path / "pyvenv.cfg", new_home])


def _home_moved(ctx: Context, facts: VenvFacts, data: dict[str, Any]) -> CheckResult:
    new_home = moved_home(facts)
    assert new_home is not None and facts.info is not None
    return CheckResult.warn(
        f"pyvenv.cfg's home points to {facts.cfg.get('home')}, which no longer exists; "
        f"{relative(ctx, facts.path)}/bin/python still runs (Python {facts.info.version_string} from {new_home})",
        expected=f"home = {new_home}, where the venv's python is",
        why="tools that read pyvenv.cfg (venv upgrades, virtualenv, IDEs) look for the base Python there; "
        "the venv itself is intact, so rewriting that line is the whole repair (no rebuild)",
        fix=Fix("point home at the interpreter the venv really uses", (_rewrite_command(facts, new_home),)),
        data={**data, "home_moved_to": str(new_home)},
    )


def repair_interpreter(check: Check, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """venv.interpreter's fix: rewrite a stale `home` when the venv's python still runs; else rebuild."""
    facts = checkout_venv(ctx) if ctx.ot_dir is not None else None
    new_home = moved_home(facts) if facts is not None and _base_interpreter(facts.cfg) is None else None
    if facts is None or new_home is None:
        return rebuild_venv(check, ctx, confirm, dry_run)
    command = _rewrite_command(facts, new_home)
    if dry_run:
        return FixOutcome(check.id, False, f"set home = {new_home} in {facts.path / 'pyvenv.cfg'}", (command,))
    if not confirm(f"Set home = {new_home} in {facts.path / 'pyvenv.cfg'}?"):
        return FixOutcome(check.id, False, "not changed")

    def action(session: Session) -> str:
        cfg = set_pyvenv_home(facts.path, new_home)
        session.note(f"set home = {new_home} in {cfg}")
        return f"set home = {new_home} in {cfg} (the venv was not rebuilt)"

    return run_repair(check.id, ctx, action)


class VenvInterpreter(Check):
    id = "venv.interpreter"
    fix = repair_interpreter
    title = "venv interpreter"
    area = "venv"
    requires = ("venv.exists",)

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = checkout_venv(ctx)
        cfg = facts.cfg
        data: dict[str, Any] = {"pyvenv_cfg": dict(cfg), "python": str(facts.python)}
        if not cfg:
            return CheckResult.fail(
                f"{facts.path}/pyvenv.cfg is missing or empty",
                expected="a venv made by `python -m venv` (pyvenv.cfg names its base interpreter)",
                why="without pyvenv.cfg the venv's python does not know its standard library",
                fix=Fix("recreate the venv", recreate(ctx, facts)),
                data=data,
            )
        base_found = _base_interpreter(cfg)
        if base_found is None and moved_home(facts) is not None:
            return _home_moved(ctx, facts, data)
        if base_found is None:
            return _base_gone(ctx, facts, data)
        info = facts.info
        if info is None or not info.ok:
            return CheckResult.fail(
                f"{facts.python} does not run: {info.error if info else 'no answer'}",
                expected="the venv's python starts",
                why="OneTrainer's launcher runs everything through this interpreter",
                fix=Fix("recreate the venv", recreate(ctx, facts)),
                data=data,
            )
        data.update(version=info.version_string, base=str(base_found))
        return CheckResult.ok(
            f"{relative(ctx, facts.path)}/bin/python is Python {info.version_string} (base {base_found})", data=data
        )


def _base_interpreter(cfg: Mapping[str, str]) -> Path | None:
    """The interpreter pyvenv.cfg names (`executable`, else a python in `home`), when it still exists."""
    base_exe = cfg.get("executable")
    candidates = [Path(base_exe)] if base_exe else []
    home = cfg.get("home")
    if home:
        major_minor = ".".join((cfg.get("version_info") or cfg.get("version") or "").split(".")[:2])
        candidates += [Path(home) / n for n in ("python3", "python", f"python{major_minor}") if n]
    return next((p for p in candidates if p.exists()), None)


def _base_gone(ctx: Context, facts: VenvFacts, data: dict[str, Any]) -> CheckResult:
    home = facts.cfg.get("home")
    base_version = facts.cfg.get("version_info") or facts.cfg.get("version")
    # A pyenv prefix in `home` names the version that was uninstalled.
    pyenv_name = Path(home).parent.name if home and Path(home).parent.parent.name == "versions" else None
    revive = f"pyenv install {pyenv_name}" if pyenv_name else None
    return CheckResult.fail(
        f"the venv's base Python {base_version or ''} is gone: pyvenv.cfg points to {home}, which "
        f"{'no longer exists' if home and not Path(home).exists() else 'has no python in it'}",
        expected="the interpreter the venv was made from still installed",
        why="a venv borrows its base interpreter; after `pyenv uninstall` (or moving that Python) "
        f"{relative(ctx, facts.path)}/bin/python cannot start, so OneTrainer cannot either",
        details=((f"or reinstall it to revive the venv as it is: {revive}",) if revive else ()),
        fix=Fix("recreate the venv with a supported Python", recreate(ctx, facts)),
        data=data,
    )


class VenvPythonVersion(Check):
    id = "venv.python-version"
    fix = rebuild_venv
    title = "venv Python version"
    area = "venv"
    requires = ("venv.interpreter",)

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = checkout_venv(ctx)
        info = facts.info
        assert info is not None and info.version is not None
        verdict = judge(info.version, ctx.ot_dir)
        data = {
            "version": info.version_string,
            "accepted": verdict.accepted,
            "deprecated": verdict.deprecated,
            "range": {"minimum": verdict.minimum, "too_high": verdict.too_high, "source": verdict.range_source},
        }
        if not verdict.accepted:
            return CheckResult.fail(
                f"the venv runs {verdict.problem}",
                expected=f"{verdict.expected} (from {verdict.range_source})",
                why="every start runs `scripts/util/version_check.py` in the venv "
                "and stops on a version outside the range",
                fix=Fix("recreate the venv with a supported Python", recreate(ctx, facts)),
                data=data,
            )
        details = [f"OneTrainer accepts Python >={verdict.minimum},<{verdict.too_high} ({verdict.range_source})"]
        if verdict.deprecated:
            details.append(verdict.deprecation_note)
        choice = python_choice(ctx)
        wanted = choice.requested if choice.via == "pyenv" else None
        data["requested"] = wanted
        mismatch = False
        if wanted and wanted != "system" and parse_version(wanted):
            mismatch = not version_matches(wanted, info.version)
        elif choice.version is not None:
            mismatch = tuple(choice.version[:2]) != tuple(info.version[:2])
            wanted = ".".join(map(str, choice.version))
        if mismatch:
            return CheckResult.warn(
                f"the venv runs Python {info.version_string}, but {choice.source} asks for {wanted}",
                expected=f"the venv made from Python {wanted}",
                why="./install.sh reuses an existing venv, so a changed .python-version only takes effect after "
                "the venv is recreated; until then OneTrainer runs on the old version",
                details=tuple(details),
                fix=Fix(
                    f"recreate the venv with Python {wanted} (or pin the venv's version back)",
                    (f"cd {q(str(ctx.ot_dir))}", f"rm -rf {q(relative(ctx, facts.path))}", "./install.sh"),
                ),
                data=data,
            )
        return CheckResult.ok(f"Python {info.version_string}", details=tuple(details), data=data)


class VenvPip(Check):
    id = "venv.pip"
    title = "pip in the venv"
    area = "venv"
    requires = ("venv.interpreter",)
    timeout_s = 90.0

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = checkout_venv(ctx)
        pip = pip_facts(ctx)
        assert pip is not None
        rel_python = f"{q(relative(ctx, facts.path))}/bin/python"
        cd = f"cd {q(str(ctx.ot_dir))}"
        data = {"runs": pip.runs, "output": pip.output, "cached": pip.cached}
        if not pip.runs:
            has_pip = "pip" in facts.dists
            return CheckResult.fail(
                f"`{rel_python} -m pip` does not run: {pip.output}" if has_pip else "pip is not installed in the venv",
                expected="pip working inside the venv",
                why="./install.sh and ./update.sh install every OneTrainer dependency with the venv's pip",
                fix=Fix("reinstall pip into the venv", (cd, f"{rel_python} -m ensurepip --upgrade")),
                data=data,
            )
        setuptools = facts.dists.get("setuptools")
        pin = python_data()["setuptools"]
        if setuptools and (parse_version(setuptools) or (0,)) >= (parse_version(pin["breaks_from"]) or (82,)):
            return CheckResult.warn(
                f"{pip.output}; but setuptools {setuptools} is installed",
                expected=f"setuptools=={pin['launcher_pin']}, as OneTrainer's launcher installs",
                why=f"setuptools {pin['breaks_from']} removed pkg_resources: `No module named 'pkg_resources'`",
                fix=Fix(
                    "install the launcher's setuptools",
                    (cd, f"{rel_python} -m pip install setuptools=={pin['launcher_pin']}"),
                ),
                data={**data, "setuptools": setuptools},
            )
        return CheckResult.ok(pip.output, data={**data, "setuptools": setuptools})

    def fix(self, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
        """pip missing or broken (ensurepip), or setuptools >= 82 (the launcher's pin)."""
        if ctx.ot_dir is None:
            return no_checkout(self.id)
        vpy = str(venv_python(venv_of(ctx)))
        pip_ok = ctx.probe.run([vpy, "-m", "pip", "--version"], timeout_s=60).ok
        if pip_ok:
            return pin_setuptools(self.id, ctx, dry_run)
        ot_dir = ctx.ot_dir
        pin = setuptools_pin(ot_dir)
        ensure, upgrade = [vpy, "-m", "ensurepip", "--upgrade"], [vpy, "-m", "pip", "install", "--upgrade", "pip", pin]
        if dry_run:
            what = "reinstall pip into the venv, then the launcher's setuptools"
            return FixOutcome(self.id, False, what, (quote(ensure), quote(upgrade)))

        def action(session: Session) -> str:
            session.run("pip", ensure, cwd=ot_dir)
            session.run("pip", upgrade, cwd=ot_dir)
            return f"reinstalled pip and {pin}"

        return run_repair(self.id, ctx, action)


def pin_setuptools(check_id: str, ctx: Context, dry_run: bool) -> FixOutcome:
    """setuptools >= 82 dropped pkg_resources: install the launcher's pin (81.0.0)."""
    ot_dir = ctx.ot_dir
    assert ot_dir is not None
    pin = setuptools_pin(ot_dir)
    cmd = [str(venv_python(venv_of(ctx))), "-m", "pip", "install", pin]
    if dry_run:
        return FixOutcome(check_id, False, f"install {pin} in the venv, as OneTrainer's launcher does", (quote(cmd),))

    def action(session: Session) -> str:
        session.run("pip", cmd, cwd=ot_dir)
        return f"installed {pin}"

    return run_repair(check_id, ctx, action)


CHECKS = [VenvExists, VenvInterpreter, VenvPythonVersion, VenvPip, VenvRequirements, VenvTorch]
