"""Which pyenv Python a repair uses, and pinning it in the checkout: pick an installed Python
OneTrainer accepts, `pyenv install` the guide's one when none fits (after asking), `pyenv local` it,
and rebuild a Python whose standard library is incomplete."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from otdoctor.data import load_table
from otdoctor.engine.check import Context
from otdoctor.errors import UserError
from otdoctor.install.session import Session, quote
from otdoctor.onetrainer.checkout import recommended_python
from otdoctor.probe.python import PyenvInfo, match_installed, pinned_version

Confirm = Callable[[str], bool]


def guide_python() -> str:
    return str(load_table("install.toml")["default_python"])


def build_packages() -> list[str]:
    return list(load_table("install.toml")["apt_build_packages"])


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
    recommended = recommended_installed(pyenv, ot_dir)
    if recommended is not None:
        rec = recommended_python(ot_dir)
        assert rec is not None
        return PythonPick(recommended.name, recommended, False, f"OneTrainer's launcher recommends {rec[0]} or newer")
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


def recommended_installed(pyenv: PyenvInfo, ot_dir: Path) -> Path | None:
    """The installed pyenv Python closest to what the checkout's launcher recommends ("Update to
    3.11.0 or newer"): its minor version's newest patch, else the next minor up; None when the
    checkout recommends nothing or pyenv has no accepted version that new."""
    from packaging.version import InvalidVersion, Version

    rec = recommended_python(ot_dir)
    if rec is None or pyenv.root is None:
        return None
    found = []
    for name in pyenv.versions:
        try:
            v = Version(name)
        except InvalidVersion:
            continue
        if v >= Version(rec[0]) and not v.is_prerelease and _accepted(name, ot_dir):
            found.append(((v.major, v.minor), -v.micro, name))
    return pyenv.root / "versions" / min(found)[2] if found else None


def wanted_python(ot_dir: Path | None) -> str:
    """What to build when pyenv has nothing suitable: the recommended minor version, else the guide's."""
    rec = recommended_python(ot_dir)
    return ".".join(rec[0].split(".")[:2]) if rec else guide_python()


def install_request(pyenv: PyenvInfo, ot_dir: Path, default: str) -> str:
    """The Python `otdoctor install` pins when --python is not given: an accepted version the checkout
    already pins (a re-run changes nothing), else the launcher's recommendation, installed or to build."""
    if recommended_python(ot_dir) is None:
        return default
    pinned = pinned_version(pyenv, ot_dir)
    if pinned.source == str(ot_dir / ".python-version") and pinned.prefix and _accepted(pinned.prefix.name, ot_dir):
        return pinned.prefix.name
    best = recommended_installed(pyenv, ot_dir)
    return best.name if best is not None else wanted_python(ot_dir)


def pin_commands(ctx: Context, pick: PythonPick) -> list[str]:
    assert ctx.ot_dir is not None
    cmds = []
    version = pick.version or wanted_python(ctx.ot_dir)
    if pick.version is None:
        cmds.append(f"pyenv install {version}")
    cmds.append(f"cd {quote([ctx.ot_dir])} && pyenv local {version}")
    return cmds


def do_pin(session: Session, ctx: Context, pick: PythonPick, confirm: Confirm) -> PythonPick:
    """Install the guide's Python when none fits (after asking), then `pyenv local` it in the checkout."""
    pyenv = ctx.probe.pyenv()
    if pick.version is None:
        packages = " ".join(build_packages())
        guide = wanted_python(ctx.ot_dir)
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
