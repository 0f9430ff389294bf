"""Every printed fix runs as printed: break a real install, paste otdoctor's fix commands into bash,
check again.

For each check that has a fix (listed from the registry, so a new fixable check without a scenario
here fails `test_every_fixable_check_has_a_scenario`), a scenario makes the broken state in a
sandbox: a fake HOME, a OneTrainer-shaped git checkout with a venv made by a real pyenv Python,
real wheels from a local wheelhouse (pip runs with PIP_NO_INDEX, so nothing reaches the network),
and a stand-in for OneTrainer's install.sh that does what upstream's does (make `venv` with the
pyenv-chosen `python`, install the launcher's pins and requirements). The test reads the fix
commands from `check --format json`, asserts the text output prints the same lines, runs them in
one `bash -e` as a user pasting them would, and runs `check` again: the finding must be gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from otdoctor.engine.registry import load_checks
from tests.support import NVML_DATA
from tests.support.factory import build_wheel, git, make_venv, pyenv_python, pyenv_version
from tests.support.installkit import pip_env, upstream, wheelhouse

PY310 = pyenv_version("3.10")

# What upstream's install.sh does on a first run, without the network: pip reads the wheelhouse
# from PIP_FIND_LINKS and PIP_NO_INDEX. The platform choice is the launcher's (NVIDIA device or
# nvidia-smi, then /dev/kfd, else the default file), and OT_PLATFORM_REQUIREMENTS overrides it.
INSTALL_SH = """#!/usr/bin/env bash
set -e
cd "$(dirname "$0")"
platform="${OT_PLATFORM_REQUIREMENTS:-detect}"
if [ "$platform" = detect ]; then
    if [ -e /dev/nvidia0 ] || command -v nvidia-smi >/dev/null; then platform=requirements-cuda.txt
    elif [ -e /dev/kfd ]; then platform=requirements-rocm.txt
    else platform=requirements-default.txt; fi
fi
if [ ! -f "${OT_PYTHON_VENV:-venv}/bin/activate" ]; then
    "${OT_PYTHON_CMD:-python}" -m venv "${OT_PYTHON_VENV:-venv}"
    py="${OT_PYTHON_VENV:-venv}/bin/python"
    "$py" -m pip install --upgrade --upgrade-strategy eager pip setuptools==81.0.0
    "$py" -m pip install --upgrade --upgrade-strategy eager -r requirements-global.txt -r "$platform"
fi
"""


@dataclass
class Sandbox:
    home: Path
    ot: Path
    env: dict[str, str]
    wheels: Path


@dataclass
class Broken:
    """A broken state: where `otdoctor check` runs, with which extra options and environment."""

    cwd: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    recheck_cwd: Path | None = None  # a fix that moves the checkout changes where it is found


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, Path]:
    """(an installed OneTrainer-shaped checkout, the wheelhouse), made once by the stand-in launcher."""
    root = tmp_path_factory.mktemp("printed")
    wheels = wheelhouse(root / "wheels")
    build_wheel(wheels, "setuptools", "82.0.0")  # the release that dropped pkg_resources
    ot = upstream(root / "OneTrainer", python_version=PY310)
    (ot / "install.sh").write_text(INSTALL_SH)
    git(ot, "commit", "-q", "-am", "install.sh as upstream's does it")
    env = {**os.environ, **pip_env(wheels), "HOME": str(root)}
    env.pop("PYENV_VERSION", None)
    subprocess.run(["./install.sh"], cwd=ot, env=env, check=True, capture_output=True, timeout=600)
    return ot, wheels


@pytest.fixture
def box(template, base_env, home) -> Sandbox:
    """A private copy of the installed checkout at ~/Projects/OneTrainer, where otdoctor finds it."""
    ot_src, wheels = template
    ot = home / "Projects" / "OneTrainer"
    shutil.copytree(ot_src, ot, symlinks=True)
    return Sandbox(home, ot, {**base_env, **pip_env(wheels)}, wheels)


def _venv_python(box: Sandbox) -> str:
    return str(box.ot / "venv" / "bin" / "python")


def _pip(box: Sandbox, *args: str) -> None:
    subprocess.run([_venv_python(box), "-m", "pip", *args], env=box.env, check=True, capture_output=True)


# Scenarios: each breaks the sandbox the way users do and says where to look -----------------------
def path_with_a_space(box: Sandbox) -> Broken:
    # A fresh home without ~/Projects: the move must create the folder it moves into.
    moved = box.home / "My Projects" / "OneTrainer"
    moved.parent.mkdir()
    box.ot.rename(moved)
    (box.home / "Projects").rmdir()
    return Broken(cwd=moved, recheck_cwd=box.home)


def no_python_version(box: Sandbox) -> Broken:
    (box.ot / ".python-version").unlink()
    return Broken(cwd=box.home)


def python_missing_stdlib(box: Sandbox) -> Broken:
    from tests.support.pythons import copy_pyenv_version, pyenv_root

    root = pyenv_root(box.home / "pyenv", [])
    copy_pyenv_version(PY310, root / "versions" / PY310, drop_modules=["lzma"])
    return Broken(cwd=box.home, env={"PYENV_ROOT": str(root)})


def no_venv(box: Sandbox) -> Broken:
    shutil.rmtree(box.ot / "venv")
    return Broken(cwd=box.home)


def venv_base_gone(box: Sandbox) -> Broken:
    # What `pyenv uninstall` of the venv's base leaves: links and pyvenv.cfg into nothing.
    venv = box.ot / "venv"
    gone = box.home / "gone" / "versions" / PY310 / "bin"
    cfg = (venv / "pyvenv.cfg").read_text()
    home_line = next(line for line in cfg.splitlines() if line.startswith("home"))
    (venv / "pyvenv.cfg").write_text(cfg.replace(home_line, f"home = {gone}"))
    for link in (venv / "bin").iterdir():
        if link.is_symlink():
            link.unlink()
            link.symlink_to(gone / "python3.10")
    return Broken(cwd=box.home)


def venv_from_the_wrong_python(box: Sandbox) -> Broken:
    shutil.rmtree(box.ot / "venv")
    make_venv(box.ot / "venv", pyenv_python("3.9"))  # below OneTrainer's minimum
    return Broken(cwd=box.home)


def no_pip(box: Sandbox) -> Broken:
    _pip(box, "uninstall", "-y", "pip")
    return Broken(cwd=box.home)


def setuptools_82(box: Sandbox) -> Broken:
    _pip(box, "install", "setuptools==82.0.0")
    return Broken(cwd=box.home)


def requirement_missing(box: Sandbox) -> Broken:
    _pip(box, "uninstall", "-y", "tinycpu")
    return Broken(cwd=box.home)


def torch_missing(box: Sandbox) -> Broken:
    _pip(box, "uninstall", "-y", "torch")
    return Broken(cwd=box.home)


def cpu_torch_on_nvidia(box: Sandbox) -> Broken:
    return Broken(cwd=box.home, env={"OTDOCTOR_NVML_SNAPSHOT": str(NVML_DATA / "h100-idle.json")})


@dataclass(frozen=True)
class Scenario:
    check_id: str
    breaks: Callable[[Sandbox], Broken]
    # Why it cannot pass here yet; the check's owner is repairing it (the test then runs as xfail).
    pending: str | None = None


SCENARIOS = [
    Scenario("system.path", path_with_a_space),
    Scenario("python.version", no_python_version),
    Scenario(
        "python.stdlib",
        python_missing_stdlib,
        pending="the fix is `sudo apt install` plus `pyenv install --force`: a system package manager and a "
        "Python build from source, which this sandbox cannot stand in for",
    ),
    Scenario("venv.exists", no_venv),
    Scenario("venv.interpreter", venv_base_gone),
    Scenario("venv.python-version", venv_from_the_wrong_python),
    Scenario("venv.pip", no_pip),
    Scenario("venv.pip", setuptools_82),
    Scenario("venv.requirements", requirement_missing),
    Scenario("venv.torch", torch_missing),
    Scenario("gpu.cuda-build", cpu_torch_on_nvidia),
]
ELSEWHERE = {
    # Fixable checks whose scenario needs a world of its own; each names the test that runs the
    # printed commands of that finding.
}


def _selection(check_id: str) -> list[str]:
    """The check and everything it requires, so `--only` runs it as a full check would."""
    by_id = {c.id: c for c in load_checks(include_plugins=False)[0]}
    wanted, todo = [], [check_id]
    while todo:
        cid = todo.pop()
        if cid not in wanted and cid in by_id:
            wanted.append(cid)
            todo.extend(by_id[cid].requires)
    return [arg for cid in wanted for arg in ("--only", cid)]


def _run(box: Sandbox, cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from tests.support.factory import otdoctor_exe

    return subprocess.run(
        [otdoctor_exe(), *args], cwd=cwd, env={**box.env, **env}, capture_output=True, text=True, timeout=300
    )


def _finding(box: Sandbox, check_id: str, cwd: Path, broken: Broken) -> dict:
    proc = _run(box, cwd, "check", *_selection(check_id), *broken.args, "--format", "json", env=broken.env)
    report = json.loads(proc.stdout)
    return next(c for c in report["checks"] if c["id"] == check_id)


def test_every_fixable_check_has_a_scenario():
    fixable = {c.id for c in load_checks(include_plugins=False)[0] if c.can_fix()}
    covered = {s.check_id for s in SCENARIOS} | set(ELSEWHERE)
    assert fixable - covered == set(), "a check with a fix has no printed-fix scenario"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.check_id}:{s.breaks.__name__}")
def test_printed_fix_runs_as_printed_and_the_finding_is_gone(scenario: Scenario, box: Sandbox, request):
    if scenario.pending:
        request.applymarker(pytest.mark.xfail(reason=scenario.pending, strict=False))
    broken = scenario.breaks(box)
    before = _finding(box, scenario.check_id, broken.cwd, broken)
    assert before["status"] in ("warn", "fail"), before
    commands = before["fix"]["commands"]
    assert commands, f"{scenario.check_id} prints no command to run: {before['fix']}"
    text = _run(box, broken.cwd, "check", *_selection(scenario.check_id), *broken.args, env=broken.env).stdout
    printed = [line.strip() for line in text.splitlines()]
    assert all(cmd in printed for cmd in commands), text  # the text output prints the same lines

    pasted = subprocess.run(
        ["bash", "-e", "-c", "\n".join(commands)],
        cwd=box.home,
        env={**box.env, **broken.env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pasted.returncode == 0, f"$ {chr(10).join(commands)}\n{pasted.stdout}{pasted.stderr}"
    after = _finding(box, scenario.check_id, broken.recheck_cwd or broken.cwd, broken)
    assert after["status"] == "ok", (commands, after)
