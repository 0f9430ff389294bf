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
A fix's other way (`or instead:`, e.g. ImageMagick beside `otdoctor fix`) is not run after it; it
must stand apart in the text and start in an absolute folder.

Cost: the installed checkout is built once per module and copied per scenario with its packages
hard-linked; only the scenarios whose fix rebuilds a whole venv are marked `slow`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from otdoctor.engine.registry import load_checks
from tests.support import NVML_DATA
from tests.support.factory import build_wheel, git, make_venv, otdoctor_exe, pyenv_python, pyenv_version
from tests.support.installkit import pip_env, upstream, wheelhouse

PY310 = pyenv_version("3.10")
# This machine's pip.conf adds indexes and constraints of its own; a user's pip reads only the
# wheelhouse here.
ISOLATED_PIP = {"PIP_CONFIG_FILE": os.devnull}

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
    cleanup: ExitStack  # servers and processes a scenario starts, closed after the test


@dataclass
class Broken:
    """A broken state: where `otdoctor check` runs, with which extra options and environment."""

    cwd: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    recheck_cwd: Path | None = None  # a fix that moves the checkout changes where it is found


def importable_torch(wheels: Path, version: str, cuda: str | None) -> None:
    """A torch stand-in that imports and answers what `venv.torch` asks (no kernels, no GPU), and
    its torchvision: the CUDA fixes reinstall both, as upstream's requirements pin both."""
    build_wheel(
        wheels,
        "torch",
        version,
        modules={
            "torch/__init__.py": "from torch import cuda, version\n__version__ = version.__version__\n",
            "torch/version.py": f"__version__ = {version!r}\ncuda = {cuda!r}\nhip = None\n",
            "torch/cuda.py": (
                "def is_available():\n    return False\n\n"
                "def device_count():\n    return 0\n\n"
                f"def get_arch_list():\n    return {['sm_90'] if cuda else []!r}\n"
            ),
        },
    )
    build_wheel(wheels, "torchvision", "0.27.0+" + version.split("+")[1])


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, Path]:
    """(an installed OneTrainer-shaped checkout, the wheelhouse), made once by the stand-in launcher."""
    root = tmp_path_factory.mktemp("printed")
    wheels = wheelhouse(root / "wheels")
    build_wheel(wheels, "setuptools", "82.0.0")  # the release that dropped pkg_resources
    for version, cuda in (("2.12.0+cpu", None), ("2.12.0+cu130", "13.0"), ("2.12.0+cu126", "12.6")):
        importable_torch(wheels, version, cuda)
    ot = upstream(root / "OneTrainer", python_version=PY310)
    (ot / "install.sh").write_text(INSTALL_SH)
    git(ot, "commit", "-q", "-am", "install.sh as upstream's does it")
    env = {**os.environ, **ISOLATED_PIP, **pip_env(wheels), "HOME": str(root)}
    env.pop("PYENV_VERSION", None)
    subprocess.run(["./install.sh"], cwd=ot, env=env, check=True, capture_output=True, timeout=600)
    return ot, wheels


@pytest.fixture
def box(template, base_env, home) -> Iterator[Sandbox]:
    """A private copy of the installed checkout at ~/Projects/OneTrainer, where otdoctor finds it.

    The copied venv's scripts (bin/pip...) still name the template's venv, as in a venv that was
    moved: a printed fix must not rely on them. Its packages are hard links into the template (pip
    unlinks before it writes, so the template stays intact); everything else is copied."""
    ot_src, wheels = template
    ot = home / "Projects" / "OneTrainer"
    shutil.copytree(ot_src, ot, symlinks=True, copy_function=_link_packages)
    with ExitStack() as cleanup:
        yield Sandbox(home, ot, {**base_env, **ISOLATED_PIP, **pip_env(wheels)}, wheels, cleanup)


def _link_packages(src: str, dst: str) -> None:
    if f"{os.sep}site-packages{os.sep}" in src:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


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
    copy_pyenv_version(PY310, root / "versions" / PY310, drop_modules=["_lzma"])
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
    make_venv(box.ot / "venv", pyenv_python("3.9"), with_pip=False)  # below OneTrainer's minimum
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
    # The fix names download.pytorch.org/whl/cu130, which holds only +cu130 builds: stood in by a
    # folder of just those wheels (pip ignores --index-url under PIP_NO_INDEX).
    index = box.home / "whl-cu130"
    index.mkdir()
    for wheel in box.wheels.glob("*+cu130-*.whl"):
        shutil.copy2(wheel, index)
    env = {"OTDOCTOR_NVML_SNAPSHOT": str(NVML_DATA / "h100-idle.json"), "PIP_FIND_LINKS": str(index)}
    return Broken(cwd=box.home, env=env)


def small_images(box: Sandbox) -> Broken:
    # The UI's last-used config (training_presets/#.json), so the printed `otdoctor fix` finds it too.
    from tests.support.trainingdata import concept, full_config, image, images, write_json

    folder = box.ot / "data" / "me"
    images(folder, 3, (64, 64))
    image(folder / "tiny.png", (32, 48))
    write_json(box.ot / "training_concepts" / "concepts.json", [concept("me", "data/me")])
    write_json(box.ot / "training_presets" / "#.json", full_config(resolution="64", output_dtype="BFLOAT_16"))
    return Broken(cwd=box.home)


def cmyk_and_16_bit_images(box: Sandbox) -> Broken:
    from PIL import Image

    broken = small_images(box)
    (box.ot / "data" / "me" / "tiny.png").unlink()
    Image.new("CMYK", (64, 64), (0, 50, 100, 0)).save(box.ot / "data" / "me" / "print.jpg")
    Image.new("I;16", (64, 64), 40000).save(box.ot / "data" / "me" / "scan.png")
    return broken


def checkpoints_missing(box: Sandbox) -> Broken:
    # The guide's two checkpoints, served by the real HTTP server that speaks the Hugging Face and
    # Civitai endpoints, with a user catalog giving their sizes and hashes.
    from tests.checkpoints.conftest import CIVITAI_FILE, HF_FILE, HF_REPO, VERSION_ID, write_catalog
    from tests.support.modelfiles import write_checkpoint
    from tests.support.models_helpers import CIVITAI_TOKEN
    from tests.support.modelserver import CivitaiVersion, ModelServer

    src = box.home / "src"
    files = {
        "sd15": write_checkpoint(src / "sd15.safetensors", "sd15", pad_bytes=300_000, seed=1),
        "sdxl": write_checkpoint(src / "sdxl.safetensors", "sdxl", pad_bytes=150_000, seed=2),
    }
    server = box.cleanup.enter_context(ModelServer())
    server.state.token = CIVITAI_TOKEN
    server.state.civitai[VERSION_ID] = CivitaiVersion(files["sd15"].read_bytes(), CIVITAI_FILE)
    server.state.hf_files[(HF_REPO, HF_FILE)] = files["sdxl"].read_bytes()
    write_catalog(box.env, files)
    env = {
        "HF_ENDPOINT": server.url,
        "OTDOCTOR_CIVITAI_URL": server.url,
        "HF_HOME": str(box.home / "hf-home"),
        "CIVITAI_TOKEN": CIVITAI_TOKEN,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    return Broken(cwd=box.home, env=env)


def vram_held_by_my_process(box: Sandbox) -> Broken:
    # A recorded RTX 4090 desktop whose compute process is a real process of this user. Started
    # through a shell that exits at once, so the killed process is reaped by init, not left a zombie.
    from tests.support.nvml_snapshots import load, put_processes, write

    started = subprocess.run(
        ["bash", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True
    )
    pid = int(started.stdout)
    box.cleanup.callback(_stop, pid)
    snap = load("rtx4090-desktop")
    put_processes(snap, "compute", [(pid, "keep")])
    return Broken(cwd=box.home, env={"OTDOCTOR_NVML_SNAPSHOT": str(write(box.home, snap))})


def _stop(pid: int) -> None:
    import signal

    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Scenario:
    check_id: str
    breaks: Callable[[Sandbox], Broken]
    # Why its printed fix cannot run in a sandbox (the test then checks the fix is what the reason
    # says, and ends as xfail).
    pending: str | None = None
    pending_commands: tuple[str, ...] = ()  # how every printed line of such a fix starts
    rebuilds: bool = False  # the fix builds a whole venv again (./install.sh): marked slow

    def param(self) -> object:
        return pytest.param(
            self, id=f"{self.check_id}:{self.breaks.__name__}", marks=[pytest.mark.slow] if self.rebuilds else []
        )


SCENARIOS = [
    Scenario("system.path", path_with_a_space, rebuilds=True),
    Scenario("python.version", no_python_version),
    Scenario(
        "python.stdlib",
        python_missing_stdlib,
        pending="the fix is `sudo apt install liblzma-dev` (root and the system package manager; no sudo "
        "here) and then `pyenv install --force 3.10.x`, which downloads CPython's source from python.org "
        "and compiles it for minutes: neither runs in a network-free sandbox without root",
        pending_commands=("sudo apt install ", "pyenv install --force "),
    ),
    Scenario("venv.exists", no_venv, rebuilds=True),
    Scenario("venv.interpreter", venv_base_gone, rebuilds=True),
    Scenario("venv.python-version", venv_from_the_wrong_python, rebuilds=True),
    Scenario("venv.pip", no_pip),
    Scenario("venv.pip", setuptools_82),
    Scenario("venv.requirements", requirement_missing),
    Scenario("venv.torch", torch_missing),
    Scenario("gpu.cuda-build", cpu_torch_on_nvidia),
    Scenario("gpu.vram", vram_held_by_my_process),
    Scenario("models.checkpoints", checkpoints_missing),
    Scenario("dataset.resolution", small_images),
    Scenario("dataset.modes", cmyk_and_16_bit_images),
]


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
    return subprocess.run(
        [otdoctor_exe(), *args], cwd=cwd, env={**box.env, **env}, capture_output=True, text=True, timeout=300
    )


def _finding(box: Sandbox, check_id: str, cwd: Path, broken: Broken) -> dict:
    proc = _run(box, cwd, "check", *_selection(check_id), *broken.args, "--format", "json", env=broken.env)
    report = json.loads(proc.stdout)
    return next(c for c in report["checks"] if c["id"] == check_id)


def _user_bin(box: Sandbox) -> Path:
    """~/.local/bin with only `otdoctor` in it, as pipx installs it: the venv otdoctor runs from
    has its own `python`, which must not shadow pyenv's shim in the pasted commands."""
    bin_dir = box.home / ".local" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if not (bin_dir / "otdoctor").exists():
        (bin_dir / "otdoctor").symlink_to(otdoctor_exe())
    return bin_dir


def answered_yes(commands: list[str]) -> list[str]:
    """`otdoctor fix` asks before it changes anything; a user at a terminal answers yes, which
    without a terminal is `--yes`. Every other line runs exactly as printed."""
    return [f"{cmd} --yes" if cmd.startswith("otdoctor fix ") else cmd for cmd in commands]


def _assert_the_other_way_stands_apart(fix: dict, printed: list[str]) -> None:
    """The other way (ImageMagick for `otdoctor fix`) comes after "or instead:", each line working
    from any folder: it starts in an absolute folder, so pasted anywhere it touches only the set."""
    instead = fix.get("instead")
    if not instead:
        return
    label = next(i for i, line in enumerate(printed) if line.startswith("or instead:"))
    assert printed[label + 1 : label + 1 + len(instead["commands"])] == instead["commands"], printed
    assert all(cmd.startswith(("cd /", "cd '/")) for cmd in instead["commands"]), instead


def test_every_fixable_check_has_a_scenario():
    fixable = {c.id for c in load_checks(include_plugins=False)[0] if c.can_fix()}
    covered = {s.check_id for s in SCENARIOS}
    assert fixable - covered == set(), "a check with a fix has no printed-fix scenario"


@pytest.mark.parametrize("scenario", [s.param() for s in SCENARIOS])
def test_printed_fix_runs_as_printed_and_the_finding_is_gone(scenario: Scenario, box: Sandbox):
    broken = scenario.breaks(box)
    before = _finding(box, scenario.check_id, broken.cwd, broken)
    assert before["status"] in ("warn", "fail"), before
    commands = before["fix"]["commands"]
    assert commands, f"{scenario.check_id} prints no command to run: {before['fix']}"
    text = _run(box, broken.cwd, "check", *_selection(scenario.check_id), *broken.args, env=broken.env).stdout
    printed = [line.strip() for line in text.splitlines()]
    assert all(cmd in printed for cmd in commands), text  # the text output prints the same lines
    _assert_the_other_way_stands_apart(before["fix"], printed)
    if scenario.pending:
        assert all(cmd.startswith(("cd ", *scenario.pending_commands)) for cmd in commands), commands
        pytest.xfail(scenario.pending)

    pasted = subprocess.run(
        ["bash", "-e", "-c", "\n".join(answered_yes(commands))],
        cwd=box.home,
        env={**box.env, **broken.env, "PATH": f"{_user_bin(box)}{os.pathsep}{box.env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pasted.returncode == 0, f"$ {chr(10).join(commands)}\n{pasted.stdout}{pasted.stderr}"
    after = _finding(box, scenario.check_id, broken.recheck_cwd or broken.cwd, broken)
    assert after["status"] == "ok", f"after {commands}: {after['summary']} {after['details']}"
