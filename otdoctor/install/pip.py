"""pip in OneTrainer's venv: the launcher's setuptools pin, its requirements files and whether the
venv satisfies them, and the commands that install them (what install.sh and update.sh run)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.install import state
from otdoctor.install.mirrors import check_requirement_commits
from otdoctor.install.session import Session
from otdoctor.onetrainer import requirements as reqs
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS
from otdoctor.probe import Probe
from otdoctor.probe.python import venv_python

EAGER = ("install", "--upgrade", "--upgrade-strategy", "eager")


def requirement_files(ot_dir: Path, platform_file: str) -> list[Path]:
    return [ot_dir / GLOBAL_REQUIREMENTS, ot_dir / platform_file]


def requirements_hash(ot_dir: Path, platform_file: str) -> str:
    """What the requirements phase installed from: the platform file's name and every file's bytes."""
    h = hashlib.sha256(platform_file.encode())
    for path in reqs.read(requirement_files(ot_dir, platform_file)).named:
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


def unmet_requirements(files: list[Path], dists: Mapping[str, str]) -> list[str]:
    """Requirement lines the venv's installed distributions (canonical name -> version) do not satisfy.

    Only names and versions: markers are judged for otdoctor's own interpreter, editable lines by
    their `#egg=` name alone, and an unreadable installed version counts as satisfied.
    """
    from packaging.markers import default_environment
    from packaging.version import InvalidVersion, Version

    here = {k: str(v) for k, v in default_environment().items()}
    unmet: list[str] = []
    for line in reqs.read(files).lines:
        if not line.editable and not reqs.applies(line, here):
            continue
        version = dists.get(line.name)
        if version is None:
            unmet.append(f"{line.raw} (not installed)")
            continue
        spec = line.requirement.specifier if line.requirement is not None else None
        try:
            if spec and not spec.contains(Version(version), prereleases=True):
                unmet.append(f"{line.raw} (installed {version})")
        except InvalidVersion:
            continue
    return unmet


def venv_dists(probe: Probe, venv: Path) -> dict[str, str] | None:
    from packaging.utils import canonicalize_name

    info = probe.interpreter(venv_python(venv), dists=True)
    if not info.ok:
        return None
    return {canonicalize_name(d["name"]): d["version"] for d in (info.data.get("dists") or [])}


def setuptools_pin(ot_dir: Path) -> str:
    """The launcher's `setuptools==X` pin, read from lib.include.sh, else otdoctor's default."""
    try:
        text = (ot_dir / "lib.include.sh").read_text(errors="replace")
    except OSError:
        text = ""
    m = re.search(r"install[^\n]*\bpip\s+(setuptools==[0-9][^\s\"']*)", text)
    return m.group(1) if m else str(load_table("install.toml")["setuptools_pin"])


def upgrade_pip_argv(venv: Path, ot_dir: Path) -> list[str]:
    """`python -m pip install --upgrade --upgrade-strategy eager pip setuptools==X`."""
    return [str(venv_python(venv)), "-m", "pip", *EAGER, "pip", setuptools_pin(ot_dir)]


def requirements_argv(venv: Path, platform_file: str) -> list[str]:
    """What update.sh runs in the checkout: both files, eager upgrades."""
    return [str(venv_python(venv)), "-m", "pip", *EAGER, "-r", GLOBAL_REQUIREMENTS, "-r", platform_file]


def upgrade_pip(session: Session, phase: str, venv: Path, ot_dir: Path) -> None:
    session.run(phase, upgrade_pip_argv(venv, ot_dir), cwd=ot_dir)


def install_requirements(session: Session, phase: str, venv: Path, ot_dir: Path, platform_file: str) -> None:
    """What update.sh runs: both files, eager upgrades, so a `git pull` gets the pinned versions."""
    files = requirement_files(ot_dir, platform_file)
    for f in files:
        if not f.is_file():
            raise UserError(
                f"{f} does not exist in the checkout", hint="choose another --platform, or update OneTrainer"
            )
    check_requirement_commits(session.probe, files)
    session.run(phase, requirements_argv(venv, platform_file), cwd=ot_dir)


def record_requirements(ot_dir: Path, platform_file: str, platform_key: str | None = None) -> None:
    """After a repair reinstalled the requirements, keep the install state truthful."""
    state.save_requirements(ot_dir, platform_file, requirements_hash(ot_dir, platform_file), platform_key)
