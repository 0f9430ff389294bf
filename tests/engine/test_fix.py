"""`otdoctor fix` through the CLI: break a real install the way users do, fix it, check again.

One real install per module (`otdoctor install` from a OneTrainer-shaped repo, real pyenv 3.10,
real venv, real wheels); each test works on its own copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import NVML_DATA
from tests.support.factory import build_wheel, git, make_venv, otdoctor_exe, pyenv_python, pyenv_version
from tests.support.installkit import pip_env, tree_digest, upstream, wheelhouse

PY310 = pyenv_version("3.10")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(upstream repo, installed checkout, wheelhouse), made once by the real `otdoctor install`."""
    import os

    from tests.conftest import PYENV_ROOT

    root = tmp_path_factory.mktemp("fix")
    wheels = wheelhouse(root / "wheels")
    repo = upstream(root / "upstream")
    target = root / "OneTrainer"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_", "PYENV_VERSION"))}
    env.update(
        HOME=str(root / "home"), PYENV_ROOT=str(PYENV_ROOT), OTDOCTOR_CACHE_DIR=str(root / "cache"), **pip_env(wheels)
    )
    (root / "home").mkdir()
    res = subprocess.run(
        [otdoctor_exe(), "install", "--dir", str(target), "--repo-url", str(repo), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    return repo, target, wheels


@pytest.fixture
def ot(installed, tmp_path) -> Path:
    """A private copy of the installed checkout (the venv works from its new place: `python -m pip`)."""
    repo, target, _ = installed
    dest = tmp_path / "OneTrainer"
    shutil.copytree(target, dest, symlinks=True)
    # The copy's venv must be the copy's own: pip and the checks look at it, not the original.
    subprocess.run([str(dest / "venv" / "bin" / "python"), "-c", "import tinyglobal"], check=True)
    return dest


@pytest.fixture
def fix_env(installed) -> dict[str, str]:
    return pip_env(installed[2])


def _check(run_cli, ot: Path, check_id: str, env: dict) -> dict:
    res = run_cli("check", "--ot-dir", str(ot), "--only", check_id, "-f", "json", env=env)
    doc = json.loads(res.stdout)
    return next(c for c in doc["checks"] if c["id"] == check_id)


def _py(venv: Path, code: str) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True).stdout.strip()


def test_missing_python_version_is_pinned(run_cli, ot, fix_env):
    (ot / ".python-version").unlink()
    assert _check(run_cli, ot, "python.version", fix_env)["status"] == "warn"
    res = run_cli("fix", "python.version", "--ot-dir", str(ot), "--yes", env=fix_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"pyenv local {PY310}" in res.stdout
    assert "re-check: ✓ ok" in res.stdout
    assert (ot / ".python-version").read_text().strip() == PY310
    assert _check(run_cli, ot, "python.version", fix_env)["status"] == "ok"


@pytest.mark.slow
def test_venv_whose_python_vanished_is_rebuilt_keeping_user_data(run_cli, ot, fix_env):
    venv = ot / "venv"
    # What `pyenv uninstall` of the venv's base leaves behind: links and pyvenv.cfg into nothing.
    gone = ot.parent / "gone" / "versions" / "3.10.9" / "bin"
    cfg = (venv / "pyvenv.cfg").read_text()
    home_line = next(line for line in cfg.splitlines() if line.startswith("home"))
    (venv / "pyvenv.cfg").write_text(cfg.replace(home_line, f"home = {gone}"))
    for name in ("python", "python3", "python3.10"):
        (venv / "bin" / name).unlink()
        (venv / "bin" / name).symlink_to(gone / "python3.10")
    (ot / "workspace").mkdir()
    (ot / "workspace" / "run.json").write_text("{}")
    (ot / "secrets.json").write_text('{"huggingface_token": "hf_zyxwvutsrqponmlkjihgfedcba987654"}')
    user = tree_digest(ot / "workspace", ot / "secrets.json")
    assert _check(run_cli, ot, "venv.interpreter", fix_env)["status"] == "fail"

    res = run_cli("fix", "venv", "--ot-dir", str(ot), "--yes", env=fix_env, timeout=300)
    assert "rebuilt" in res.stdout, res.stdout + res.stderr
    assert _check(run_cli, ot, "venv.interpreter", fix_env)["status"] == "ok"
    assert f"versions/{PY310}/bin" in (venv / "pyvenv.cfg").read_text()
    assert _py(venv, "import tinyglobal, tinycpu; print('ok')") == "ok"
    assert not list(ot.glob("venv.otdoctor-old-*"))  # removed once the new venv worked
    assert tree_digest(ot / "workspace", ot / "secrets.json") == user
    assert "hf_zyxwvuts" not in res.stdout + res.stderr + (ot / "otdoctor-fix.log").read_text()


@pytest.mark.slow
def test_venv_from_the_wrong_python_is_rebuilt(run_cli, ot, fix_env):
    shutil.rmtree(ot / "venv")
    make_venv(ot / "venv", pyenv_python("3.12"))  # the user's global Python made it
    res = run_cli("fix", "--ot-dir", str(ot), "--yes", env=fix_env, timeout=300)
    assert "rebuilt" in res.stdout, res.stdout + res.stderr
    assert _py(ot / "venv", "import sys; print(sys.version_info[:2])") == "(3, 10)"
    assert _check(run_cli, ot, "venv.python-version", fix_env)["status"] == "ok"
    assert _check(run_cli, ot, "venv.requirements", fix_env)["status"] == "ok"


def test_setuptools_82_is_pinned_back(run_cli, ot, fix_env, tmp_path):
    # A stand-in for setuptools 82 (the release without pkg_resources), kept out of the wheelhouse.
    newer = tmp_path / "newer"
    build_wheel(newer, "setuptools", "82.0.0", modules={"setuptools/__init__.py": "__version__ = '82.0.0'\n"})
    subprocess.run(
        [
            str(ot / "venv" / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(newer),
            "setuptools==82.0.0",
        ],
        check=True,
    )
    assert _check(run_cli, ot, "venv.pip", fix_env)["status"] == "warn"
    res = run_cli("fix", "venv.pip", "--ot-dir", str(ot), "--yes", env=fix_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "setuptools==81.0.0" in res.stdout
    assert _py(ot / "venv", "import importlib.metadata as m; print(m.version('setuptools'))") == "81.0.0"
    assert _check(run_cli, ot, "venv.pip", fix_env)["status"] == "ok"


def test_git_pull_without_update_is_fixed_by_the_update_path(run_cli, ot, fix_env, installed):
    repo = installed[0]
    (repo / "requirements-global.txt").write_text("tinyglobal==2.0\ntinyshared>=1.0\n")
    git(repo, "commit", "-q", "-am", "bump tinyglobal")
    git(ot, "pull", "-q", "--ff-only")  # the user's `git pull`, without ./update.sh
    assert _check(run_cli, ot, "venv.requirements", fix_env)["status"] == "fail"
    res = run_cli("fix", "venv.requirements", "--ot-dir", str(ot), "--yes", env=fix_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _py(ot / "venv", "import tinyglobal; print(tinyglobal.__version__)") == "2.0"
    assert _check(run_cli, ot, "venv.requirements", fix_env)["status"] == "ok"


@pytest.mark.slow
def test_broken_editable_checkout_in_venv_src(run_cli, ot, fix_env, installed, tmp_path):
    # An editable git dependency, as OneTrainer's diffusers and mgds are.
    dep = tmp_path / "tinyeditable"
    (dep / "tinyeditable").mkdir(parents=True)
    (dep / "tinyeditable" / "__init__.py").write_text("VALUE = 1\n")
    (dep / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tinyeditable"\nversion = "1.0"\n[tool.setuptools]\npackages = ["tinyeditable"]\n'
    )
    git(dep, "init", "-q", "-b", "main")
    git(dep, "add", "-A")
    git(dep, "commit", "-q", "-m", "dep")
    commit = git(dep, "rev-parse", "HEAD").strip()
    line = f"-e git+file://{dep}@{commit[:7]}#egg=tinyeditable"
    (ot / "requirements-global.txt").write_text((ot / "requirements-global.txt").read_text() + line + "\n")
    git(ot, "commit", "-q", "-am", "editable dependency")
    res = run_cli("fix", "venv.requirements", "--ot-dir", str(ot), "--yes", env=fix_env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    src = ot / "venv" / "src" / "tinyeditable"
    assert (src / ".git").is_dir()
    # A clone cut short: the folder is there, its git metadata is not (pip then fails in vcs/git.py).
    shutil.rmtree(src / ".git")
    (src / ".git").mkdir()
    assert _check(run_cli, ot, "venv.requirements", fix_env)["status"] == "fail"
    res = run_cli("fix", "venv.requirements", "--ot-dir", str(ot), "--yes", env=fix_env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "removed tinyeditable" in res.stdout
    assert git(src, "rev-parse", "HEAD").strip() == commit
    assert _check(run_cli, ot, "venv.requirements", fix_env)["status"] == "ok"


def test_dry_run_changes_nothing_and_shows_the_commands(run_cli, ot, fix_env):
    (ot / ".python-version").unlink()
    shutil.rmtree(ot / "venv")
    before = tree_digest(ot)
    res = run_cli("fix", "--ot-dir", str(ot), "--dry-run", env=fix_env)
    assert res.returncode == 0, res.stderr
    assert f"pyenv local {PY310}" in res.stdout
    assert "-m venv" in res.stdout
    assert "dry run: nothing was changed" in res.stdout
    assert tree_digest(ot) == before


def test_without_a_terminal_a_question_needs_yes(run_cli, ot, fix_env):
    (ot / ".python-version").unlink()
    res = run_cli("fix", "python.version", "--ot-dir", str(ot), env=fix_env)
    assert res.returncode == 2
    assert "--yes" in res.stderr
    assert not (ot / ".python-version").exists()


def test_what_cannot_be_fixed_prints_manual_steps(run_cli, installed, tmp_path, fix_env):
    spaced = tmp_path / "My Projects" / "OneTrainer"
    spaced.parent.mkdir()
    git(tmp_path, "clone", "-q", str(installed[0]), str(spaced))
    res = run_cli("fix", "system.path", "--ot-dir", str(spaced), "--yes", env=fix_env)
    assert res.returncode == 1
    assert "cannot be fixed automatically; do this by hand" in res.stdout
    assert "space" in res.stdout


def test_unknown_check_is_a_usage_error(run_cli, ot, fix_env):
    res = run_cli("fix", "no.such-check", "--ot-dir", str(ot), env=fix_env)
    assert res.returncode == 2
    assert "no check matches" in res.stderr


def test_missing_ot_dir_or_config_is_a_usage_error(run_cli, tmp_path):
    # Was: fixes offered for the missing checkout (`cd /nope && pyenv local ...`), then a question.
    res = run_cli("fix", "--ot-dir", str(tmp_path / "nope"), "--dry-run")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.splitlines()[0] == f"otdoctor: error: OneTrainer checkout not found: {tmp_path / 'nope'}"
    assert res.stdout == ""
    # Was: exit 1 and "correct the file at that line" for a file that does not exist.
    res = run_cli("fix", "--config", str(tmp_path / "nope.json"), "--dry-run")
    assert (
        res.returncode == 2
        and res.stderr.strip() == f"otdoctor: error: config file not found: {tmp_path / 'nope.json'}"
    )


def test_healthy_install_has_nothing_to_fix(run_cli, ot, fix_env):
    res = run_cli("fix", "venv.pip", "python", "--ot-dir", str(ot), "--yes", env=fix_env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Nothing to fix" in res.stdout


# The GPU cannot exist here: recorded NVML snapshots stand in for it (the gpu.* checks' own fakes).
NVML = NVML_DATA


def _torch_version(venv: Path) -> str:
    return _py(venv, "import importlib.metadata as m; print(m.version('torch'))")


@pytest.mark.slow
def test_cpu_torch_on_an_nvidia_machine_gets_the_cuda_build(run_cli, ot, fix_env):
    env = {**fix_env, "OTDOCTOR_NVML_SNAPSHOT": str(NVML / "h100-idle.json")}
    assert _torch_version(ot / "venv") == "2.12.0+cpu"
    before = _check(run_cli, ot, "gpu.cuda-build", env)
    assert before["status"] == "fail" and "CPU-only" in before["summary"]
    res = run_cli("fix", "gpu.cuda-build", "--ot-dir", str(ot), "--yes", env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "requirements-cuda.txt" in res.stdout
    assert _torch_version(ot / "venv") == "2.12.0+cu130"
    assert _check(run_cli, ot, "gpu.cuda-build", env)["status"] == "ok"


@pytest.mark.slow
def test_driver_too_old_for_cu130_switches_to_the_legacy_build(run_cli, ot, fix_env, installed):
    subprocess.run(
        [
            str(ot / "venv" / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(installed[2]),
            "torch==2.12.0+cu130",
        ],
        check=True,
    )
    env = {**fix_env, "OTDOCTOR_NVML_SNAPSHOT": str(NVML / "rtx4090-desktop.json")}  # driver 570: CUDA 12.8
    before = _check(run_cli, ot, "gpu.cuda-build", env)
    assert before["status"] == "fail" and "too old" in before["summary"]
    res = run_cli("fix", "gpu.cuda-build", "--ot-dir", str(ot), "--dry-run", env=env)
    assert "requirements-cuda-legacy.txt" in res.stdout and "580.65.06" in res.stdout  # or the driver to install
    res = run_cli("fix", "gpu.cuda-build", "--ot-dir", str(ot), "--yes", env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _torch_version(ot / "venv") == "2.12.0+cu126"
    assert _check(run_cli, ot, "gpu.cuda-build", env)["status"] == "ok"


def test_stdlib_missing_plans_build_packages_pyenv_rebuild_and_venv(run_cli, ot, fix_env, tmp_path):
    """A pyenv Python built without liblzma-dev: its prefix lacks _lzma. The repair's plan is shown
    (a real `pyenv install --force` takes many minutes, so only the dry run runs here)."""
    root = tmp_path / "pyenv"
    (root / "versions").mkdir(parents=True)
    real = pyenv_python(PY310).parent.parent
    subprocess.run(["cp", "-al", str(real), str(root / "versions" / PY310)], check=True)  # hard links: instant
    for so in (root / "versions" / PY310 / "lib" / "python3.10" / "lib-dynload").glob("_lzma*"):
        so.unlink()  # unlinks the copy's name only; the real interpreter keeps its module
    env = {**fix_env, "PYENV_ROOT": str(root)}
    stdlib = _check(run_cli, ot, "python.stdlib", env)
    assert stdlib["status"] in ("fail", "warn") and "lzma" in stdlib["summary"]
    before = tree_digest(root, ot)
    res = run_cli("fix", "python.stdlib", "--ot-dir", str(ot), "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    assert "liblzma-dev" in res.stdout
    assert f"pyenv install --force {PY310}" in res.stdout
    assert f"{root}/versions/{PY310}/bin/python -m venv" in res.stdout
    assert tree_digest(root, ot) == before
    assert list((real / "lib" / "python3.10" / "lib-dynload").glob("_lzma*"))


@pytest.mark.slow
def test_a_rebuild_that_fails_puts_the_old_venv_back(run_cli, ot, fix_env):
    shutil.rmtree(ot / "venv")
    make_venv(ot / "venv", pyenv_python("3.12"))
    cfg_before = (ot / "venv" / "pyvenv.cfg").read_text()
    (ot / "requirements-global.txt").write_text("tinyglobal==1.0\nnosuchpackage==9.9\n")  # pip will fail
    res = run_cli("fix", "venv.python-version", "--ot-dir", str(ot), "--yes", env=fix_env, timeout=300)
    assert res.returncode == 1
    assert "failed: install failed in phase 'requirements'" in res.stdout and "otdoctor-fix.log" in res.stdout
    assert (ot / "venv" / "pyvenv.cfg").read_text() == cfg_before  # the user's venv, as it was
    assert not list(ot.glob("venv.otdoctor-old-*"))
    assert "restored the previous venv" in (ot / "otdoctor-fix.log").read_text()


@pytest.mark.slow
def test_rebuild_killed_midway_then_fix_again_leaves_no_old_venvs(run_cli, ot, fix_env, base_env):
    import os
    import signal
    import time

    shutil.rmtree(ot / "venv")
    make_venv(ot / "venv", pyenv_python("3.12"))
    argv = [otdoctor_exe(), "fix", "venv.python-version", "--ot-dir", str(ot), "--yes"]
    proc = subprocess.Popen(
        argv, env={**base_env, **fix_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not list(ot.glob("venv.otdoctor-old-*")) or not (ot / "venv").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the old venv is aside, the new one half made
    proc.wait(timeout=30)
    assert list(ot.glob("venv.otdoctor-old-*"))
    res = run_cli("fix", "venv", "--ot-dir", str(ot), "--yes", env=fix_env, timeout=300)
    assert "rebuilt" in res.stdout, res.stdout + res.stderr
    assert _py(ot / "venv", "import sys; print(sys.version_info[:2])") == "(3, 10)"
    assert not list(ot.glob("venv.otdoctor-old-*"))
