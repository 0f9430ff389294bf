"""pyenv and Python: pyenv present, the Python the checkout will use, and its standard library.

The launcher builds OneTrainer's venv with `${OT_PYTHON_CMD:-python} -m venv venv`; with pyenv the
version comes from `.python-version` (`pyenv local 3.10` in the guide). These checks look at that
interpreter before any venv exists, so `otdoctor check` is useful before `./install.sh` too.
"""

from __future__ import annotations

import shlex
from typing import Any

from otdoctor.data import load_table
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome, Status
from otdoctor.install import python_pin
from otdoctor.install.actions import no_checkout, platform_file, rebuild_pinned_venv, run_repair, venv_of
from otdoctor.install.python_pin import Confirm, can_sudo, do_pin, guide_python, pick_python, pin_commands
from otdoctor.install.session import Session
from otdoctor.install.venv import rebuild_commands
from otdoctor.onetrainer.python_range import (
    PythonChoice,
    judge,
    parse_version,
    python_choice,
    python_data,
    version_matches,
)

from .python_pyenv import Pyenv


def _checkout(ctx: Context):
    """The checkout folder when it exists (a mistyped --ot-dir is onetrainer.checkout's finding)."""
    return ctx.ot_dir if ctx.ot_dir is not None and ctx.ot_dir.is_dir() else None


def _cd(ctx: Context) -> tuple[str, ...]:
    checkout = _checkout(ctx)
    return (f"cd {shlex.quote(str(checkout))}",) if checkout is not None else ()


def _guide() -> str:
    return str(python_data()["guide_version"])


def _choice_data(choice: PythonChoice) -> dict:
    return {
        "command": choice.command,
        "via": choice.via,
        "requested": choice.requested,
        "source": choice.source,
        "pinned_in_checkout": choice.pinned_in_checkout,
        "installed": choice.installed,
        "executable": str(choice.executable) if choice.executable else None,
        "pyenv_version": choice.pyenv_version_name,
        "version": choice.info.version_string if choice.info and choice.info.ok else None,
    }


def pin_python(check: Check, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
    """The fix of python.version (and of python.stdlib without a pyenv Python): no `.python-version`,
    or one naming a missing or unsupported Python: `pyenv local X`."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check.id)
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

    return run_repair(check.id, ctx, action)


class PythonVersion(Check):
    id = "python.version"
    fix = pin_python
    title = "Python for OneTrainer"
    area = "python"

    def diagnose(self, ctx: Context) -> CheckResult:
        choice = python_choice(ctx)
        data = _choice_data(choice)
        guide = _guide()
        if not choice.installed:
            return _not_installed(ctx, choice, data)
        info = choice.info
        if info is None or not info.ok or info.version is None:
            error = info.error if info else "no answer"
            return CheckResult.fail(
                f"{choice.executable} ({choice.source}) does not run: {error}",
                expected="a working Python interpreter",
                why="./install.sh builds OneTrainer's venv with this interpreter",
                fix=Fix(
                    f"reinstall the interpreter (the guide uses {guide})",
                    (*_cd(ctx), f"pyenv install --force {choice.pyenv_version_name or guide}", f"pyenv local {guide}"),
                ),
                data=data,
            )
        verdict = judge(info.version, ctx.ot_dir)
        data.update(range_data(verdict))
        found = f"Python {info.version_string} ({choice.source}; {choice.executable})"
        if not verdict.accepted:
            return CheckResult.fail(
                f"{found}: {verdict.problem}",
                expected=f"{verdict.expected} (from {verdict.range_source})",
                why=_WHY_RANGE,
                fix=Fix(f"install and pin a supported Python (the guide uses {guide})", _pin_fix(ctx)),
                data=data,
            )
        return _accepted(ctx, choice, verdict, found, data)


_WHY_RANGE = "./install.sh stops with `Your Python version is too low/too high`, or the install fails"


def _pin_fix(ctx: Context) -> tuple[str, ...]:
    guide = _guide()
    return (*_cd(ctx), f"pyenv install {guide}", f"pyenv local {guide}")


def _not_installed(ctx: Context, choice: PythonChoice, data: dict[str, Any]) -> CheckResult:
    """FAIL: the Python the launcher would run is not there (pyenv's `system`, a version pyenv lacks,
    or no command on PATH)."""
    guide = _guide()
    if choice.via == "pyenv" and choice.requested == "system":
        return CheckResult.fail(
            f"pyenv would use the system Python ({choice.source}), and there is no `{choice.command}` outside pyenv",
            expected=f"a pyenv version pinned for the checkout (`pyenv local {guide}`)",
            why="`python` fails with `pyenv: python: command not found`, so ./install.sh cannot start",
            fix=Fix(f"install and pin Python {guide}", _pin_fix(ctx)),
            data=data,
        )
    if choice.via == "pyenv":
        return _pyenv_lacks(ctx, choice, data)
    return CheckResult.fail(
        f"`{choice.command}` is not on PATH ({choice.source})",
        expected=f"a Python {guide} interpreter the launcher can run as `{choice.command}`",
        why='./install.sh runs `python -m venv venv` and stops with `Python command "python" does not exist`',
        fix=Fix(f"install Python {guide} with pyenv and pin it in the checkout", _pin_fix(ctx)),
        data=data,
    )


def _pyenv_lacks(ctx: Context, choice: PythonChoice, data: dict[str, Any]) -> CheckResult:
    requested = choice.requested or "?"
    req_t = parse_version(requested)
    verdict = judge(req_t, ctx.ot_dir) if req_t else None
    data.update(range_data(verdict))
    if verdict is not None and not verdict.accepted:
        return CheckResult.fail(
            f"{choice.source} asks for Python {requested}, which is not installed; {verdict.problem}",
            expected=verdict.expected,
            why=_WHY_RANGE,
            fix=Fix(f"install and pin a supported Python (the guide uses {_guide()})", _pin_fix(ctx)),
            data=data,
        )
    pyenv_root = choice.pyenv.root
    assert pyenv_root is not None  # the choice went through pyenv, so pyenv was found
    return CheckResult.fail(
        f"{choice.source} asks for Python {requested}, which is not installed in pyenv",
        expected=f"Python {requested} under {pyenv_root / 'versions'}",
        why="`python` fails with `pyenv: version `" + requested + "' is not installed`, so ./install.sh cannot start",
        details=(f"installed versions: {', '.join(choice.pyenv.versions) or 'none'}",),
        fix=Fix(f"install Python {requested} with pyenv", (*_cd(ctx), f"pyenv install {requested}")),
        data=data,
    )


def _accepted(ctx: Context, choice: PythonChoice, verdict: Any, found: str, data: dict[str, Any]) -> CheckResult:
    """OK for a Python in OneTrainer's range; WARN when pyenv picks it but the checkout pins nothing."""
    guide = _guide()
    details: list[str] = [f"OneTrainer accepts Python >={verdict.minimum},<{verdict.too_high} ({verdict.range_source})"]
    if verdict.deprecated:
        details.append(verdict.deprecation_note)
        # On the ✓ line itself: the launcher prints this warning at every start.
        found += f"; OneTrainer's launcher recommends {verdict.recommended} or newer"
        data["recommended"] = {"version": verdict.recommended, "source": verdict.recommended_source}
    if choice.via != "pyenv" and choice.pinned_in_checkout:
        details.append(f"the checkout's .python-version is ignored: `{choice.command}` is not a pyenv shim")
    hidden = choice.overrides if choice.source == "PYENV_VERSION" else None
    if hidden is not None and choice.info is not None and not version_matches(hidden[1], choice.info.version or ()):
        return _pyenv_version_overrides(ctx, choice, hidden, found, details, data)
    unpinned = choice.via == "pyenv" and not choice.pinned_in_checkout and choice.source != "PYENV_VERSION"
    if unpinned and _checkout(ctx) is not None:
        return CheckResult.warn(
            f"{found}; the checkout has no .python-version",
            expected=f"a .python-version in {ctx.ot_dir} (`pyenv local {guide}`)",
            why="without it the venv gets whatever pyenv's global version is the day ./install.sh runs; "
            "changing the global version for another project later changes OneTrainer's next venv",
            details=tuple(details),
            fix=Fix("pin the Python version in the checkout, as the guide does", (*_cd(ctx), f"pyenv local {guide}")),
            data=data,
        )
    return CheckResult.ok(found, details=tuple(details), data=data)


def _pyenv_version_overrides(
    ctx: Context, choice: PythonChoice, hidden: tuple[str, str], found: str, details: list[str], data: dict[str, Any]
) -> CheckResult:
    """WARN: PYENV_VERSION (`pyenv shell`) hides the checkout's .python-version in this shell only."""
    file, pinned = hidden
    return CheckResult.warn(
        f"{found}: PYENV_VERSION={choice.requested} is set in this shell (`pyenv shell` sets it) and "
        f"overrides {file}, which asks for {pinned}",
        expected=f"Python {pinned} from {file}",
        why=f"./install.sh or ./start-ui.sh started from this shell build and run OneTrainer with "
        f"{choice.requested}; from a new terminal they use {pinned}: the venv and the launcher disagree",
        details=tuple(details),
        fix=Fix("use the checkout's Python in this shell", ("unset PYENV_VERSION",)),
        data={**data, "overrides": {"file": file, "version": pinned}},
    )


def range_data(verdict) -> dict:
    if verdict is None:
        return {}
    return {
        "range": {"minimum": verdict.minimum, "too_high": verdict.too_high, "source": verdict.range_source},
        "accepted": verdict.accepted,
        "problem": verdict.problem,
        "deprecated": verdict.deprecated,
    }


def _packages(table: dict[str, Any], missing: dict[str, str], *keys: str) -> list[str]:
    """The Debian packages that provide the missing modules: each module's first of KEYS that names any."""
    packages: list[str] = []
    for module in missing:
        entry = table.get(module, {})
        for pkg in next((entry.get(k) for k in keys if entry.get(k)), None) or []:
            if pkg not in packages:
                packages.append(pkg)
    return packages


def _stdlib_fix(choice: PythonChoice, table: dict[str, Any], missing: dict[str, str]) -> tuple[Fix, str]:
    """How to get the missing modules, and why they are missing."""
    if choice.via == "pyenv" and choice.pyenv_version_name:
        packages = _packages(table, missing, "debian")
        commands = []
        if packages:
            commands.append("sudo apt install " + " ".join(packages))
        commands.append(f"pyenv install --force {choice.pyenv_version_name}")
        fix = Fix(
            f"install the build packages, then rebuild Python {choice.pyenv_version_name} "
            "(an existing venv picks the rebuilt modules up)",
            tuple(commands),
        )
        return fix, "pyenv compiled this Python while the -dev packages were missing, so the modules were left out"
    packages = _packages(table, missing, "debian_system", "debian")
    fix = Fix(
        f"install the missing parts of {choice.executable}, or use a pyenv Python {_guide()}",
        ("sudo apt install " + " ".join(packages),)
        if packages
        else (f"pyenv install {_guide()}", f"pyenv local {_guide()}"),
    )
    return fix, "this interpreter was built or packaged without them"


class PythonStdlib(Check):
    id = "python.stdlib"
    title = "Python standard library"
    area = "python"
    requires = ("python.version",)

    def diagnose(self, ctx: Context) -> CheckResult:
        choice = python_choice(ctx)
        info = choice.info
        assert info is not None and info.ok  # python.version passed
        table = load_table("stdlib_packages.toml")["modules"]
        stdlib = info.data.get("stdlib") or {}
        checked = [m for m in table if m in stdlib]
        missing = info.missing_stdlib
        data = {"executable": str(choice.executable), "checked": checked, "missing": missing}
        if not missing:
            return CheckResult.ok(f"{', '.join(checked)} all import in Python {info.version_string}", data=data)
        severe = any(table.get(m, {}).get("severity", "fail") == "fail" for m in missing)
        details = []
        for module, error in missing.items():
            why = table.get(module, {}).get("why", "")
            details.append(f"{module}: {error}" + (f"; {why}" if why else ""))
        fix, cause = _stdlib_fix(choice, table, missing)
        names = ", ".join(missing)
        status = Status.FAIL if severe else Status.WARN
        return CheckResult(
            status,
            f"Python {info.version_string} ({choice.executable}) cannot import {names}",
            expected="ssl, ctypes, bz2, lzma, sqlite3, readline and tkinter all import",
            why=cause
            + "; OneTrainer then fails later with `No module named '_"
            + next(iter(missing))
            + "'` or similar",
            details=tuple(details),
            fix=fix,
            data=data,
        )

    def fix(self, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
        """Stdlib modules missing from a pyenv Python: build packages (apt, where allowed),
        `pyenv install --force`, then rebuild the venv against the complete Python."""
        ot_dir = ctx.ot_dir
        if ot_dir is None:
            return no_checkout(self.id)
        pick = pick_python(ctx)
        version, prefix = pick.version, pick.prefix
        if version is None or prefix is None:
            return pin_python(self, ctx, confirm, dry_run)
        packages = python_pin.build_packages()
        sudo, sudo_why = can_sudo(ctx)
        apt_allowed = sudo is not None and ctx.probe.which("apt-get") is not None
        venv = venv_of(ctx)
        file, _, _ = platform_file(ctx)
        if dry_run:
            cmds = [f"sudo apt-get install -y {' '.join(packages)}", f"pyenv install --force {version}"]
            cmds += rebuild_commands(prefix / "bin" / "python", venv, ot_dir, file)
            note = "" if apt_allowed else f" (apt: {sudo_why})"
            what = f"install the build packages, rebuild Python {version} and the venv{note}"
            return FixOutcome(self.id, False, what, tuple(cmds))

        def action(session: Session) -> str:
            if (
                apt_allowed
                and sudo is not None
                and confirm(f"Install the build packages with apt-get ({' '.join(packages)})?")
            ):
                session.run("apt", [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages])
            elif not apt_allowed:
                session.ui.message(f"skipping apt ({sudo_why}): sudo apt-get install -y {' '.join(packages)}")
            python_pin.reinstall_python(session, ctx, version, prefix, packages, confirm)
            message = rebuild_pinned_venv(session, ctx, pick, confirm, venv, file)
            return f"rebuilt Python {version}; {message}"

        return run_repair(self.id, ctx, action)


CHECKS = [Pyenv, PythonVersion, PythonStdlib]
