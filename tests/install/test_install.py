"""`otdoctor install` end to end: a real git repository, real pyenv Pythons, real venvs and pip
installing real wheels from a local folder (pip's own PIP_NO_INDEX / PIP_FIND_LINKS)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.factory import git, make_venv, otdoctor_exe, pyenv_python, pyenv_version
from tests.support.installkit import bare_for_http, pip_env, serve, simple_index, tree_digest, upstream, wheelhouse

PY310 = pyenv_version("3.10")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return wheelhouse(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return upstream(tmp_path / "upstream")


def _install(run_cli, target: Path, repo: Path | str, wheels: Path | str, *extra: str, env: dict | None = None):
    return run_cli(
        "install",
        "--dir",
        str(target),
        "--repo-url",
        str(repo),
        "--yes",
        *extra,
        env={**pip_env(wheels), **(env or {})},
        timeout=300,
    )


def _venv_has(venv: Path, *modules: str) -> bool:
    code = "; ".join(f"import {m}" for m in modules)
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True).returncode == 0


def _assert_installed(target: Path, repo: Path) -> None:
    venv = target / "venv"
    cfg = (venv / "pyvenv.cfg").read_text()
    assert f"versions/{PY310}/bin" in cfg, cfg
    assert (target / ".python-version").read_text().strip() == PY310
    assert _venv_has(venv, "tinyglobal", "tinyshared", "tinycpu")
    st = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import setuptools; print(setuptools.__version__)"],
        capture_output=True,
        text=True,
    )
    assert st.stdout.strip() == "81.0.0"
    assert git(target, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    assert git(target, "status", "--porcelain", "--untracked-files=no") == ""
    assert not list(target.glob("venv.otdoctor-old-*"))


@pytest.mark.slow
def test_install_end_to_end_then_rerun_is_a_no_op(run_cli, tmp_path, repo, wheels):
    target = tmp_path / "home" / "Projects" / "OneTrainer"
    res = _install(run_cli, target, repo, wheels)
    assert res.returncode in (0, 1), res.stderr
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    for phase in (
        "OneTrainer checkout",
        "Python through pyenv",
        "Virtual environment",
        "pip and setuptools",
        "OneTrainer's requirements",
        "otdoctor check",
    ):
        assert phase in res.stdout
    _assert_installed(target, repo)
    log = (target / "otdoctor-install.log").read_text()
    assert "Successfully installed" in log and "tinyglobal" in log  # pip's whole output is kept
    # The doctor's own verdict on the result is printed: everything passes but `import torch`
    # (the wheelhouse's torch is a stand-in carrying only version.py).
    failed = [line for line in res.stdout.splitlines() if line.startswith("  ✗")]
    assert failed and all("(venv.torch)" in line for line in failed), failed
    assert "(venv.requirements): all" in res.stdout and "(python.stdlib)" in res.stdout

    before = tree_digest(target / "venv")
    again = _install(run_cli, target, repo, wheels)
    assert again.returncode == res.returncode
    assert "reusing" in again.stdout
    # It says only what happened: nothing was upgraded or installed this time.
    assert "pip upgraded" not in again.stdout and "installed requirements-global.txt" not in again.stdout
    assert "already in place: setuptools==81.0.0; nothing to do" in again.stdout
    assert "already satisfied: requirements-global.txt + requirements-default.txt" in again.stdout
    assert "pip upgraded, setuptools==81.0.0" in res.stdout
    assert tree_digest(target / "venv") == before  # nothing reinstalled


@pytest.mark.slow
def test_dry_run_changes_nothing(run_cli, tmp_path, repo, wheels):
    target = tmp_path / "ot"
    # Everything a user owns here: the checkout-to-be, the repository, the home folder.
    # (otdoctor's own cache folder may change: it is not the user's.)
    roots = (target, repo, tmp_path / "home")
    before = tree_digest(*roots)
    res = _install(run_cli, target, repo, wheels, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "dry run: nothing was changed" in res.stdout
    assert f"git clone {repo} {target}" in res.stdout
    assert f"pyenv local {PY310}" in res.stdout
    assert "-r requirements-global.txt -r requirements-default.txt" in res.stdout
    assert not target.exists()
    assert tree_digest(*roots) == before

    # And on a half-broken install: nothing is repaired by looking.
    assert _install(run_cli, target, repo, wheels).returncode in (0, 1)
    (target / ".python-version").unlink()
    before = tree_digest(*roots)
    res = _install(run_cli, target, repo, wheels, "--dry-run")
    assert res.returncode == 0
    assert "no .python-version in the checkout yet" in res.stdout
    assert tree_digest(*roots) == before


@pytest.mark.slow
def test_wrong_python_venv_is_replaced_and_user_data_kept(run_cli, tmp_path, repo, wheels):
    target = tmp_path / "ot"
    git(tmp_path, "clone", "-q", str(repo), str(target))
    make_venv(target / "venv", pyenv_python("3.12"))
    (target / "workspace" / "run1").mkdir(parents=True)
    (target / "workspace" / "run1" / "samples.txt").write_text("mine")
    (target / "models").mkdir()
    (target / "models" / "model.safetensors").write_bytes(b"weights")
    (target / "secrets.json").write_text('{"huggingface_token": "hf_abcdefghijklmnopqrstuvwxyz123456"}')
    user = tree_digest(target / "workspace", target / "models", target / "secrets.json")

    res = _install(run_cli, target, repo, wheels)
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    assert "moved the unusable venv" in res.stdout
    _assert_installed(target, repo)
    assert tree_digest(target / "workspace", target / "models", target / "secrets.json") == user
    assert "hf_abcdefghij" not in res.stdout + res.stderr + (target / "otdoctor-install.log").read_text()


def _digest_state(target: Path) -> str:
    return (target / ".otdoctor-install.json").read_text() if (target / ".otdoctor-install.json").exists() else ""


def _hold_pyenv_local(tmp_path: Path, env: dict[str, str]) -> Path:
    """Make `pyenv local` wait while the returned file exists, so a kill in the python phase lands
    inside it (the phase otherwise ends in milliseconds, before a test could see its log line)."""
    real = shutil.which("pyenv", path=env["PATH"]) or str(Path(env["PYENV_ROOT"]) / "bin" / "pyenv")
    wrapper_dir = tmp_path / "pyenv-hold"
    wrapper_dir.mkdir()
    hold = tmp_path / "hold-pyenv-local"
    hold.touch()
    wrapper = wrapper_dir / "pyenv"
    wrapper.write_text(
        f'#!/bin/sh\nif [ "$1" = local ]; then while [ -e "{hold}" ]; do sleep 0.05; done; fi\nexec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    env["PATH"] = f"{wrapper_dir}{os.pathsep}{env['PATH']}"
    return hold


def _wait_for_log(path: Path, text: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"install ended before {text!r}: {proc.communicate()}")
        time.sleep(0.02)
    raise TimeoutError(text)


@pytest.mark.slow
@pytest.mark.parametrize(
    "phase, sig",
    [
        ("checkout", signal.SIGKILL),
        ("python", signal.SIGKILL),
        ("venv", signal.SIGKILL),
        ("pip", signal.SIGKILL),
        ("requirements", signal.SIGKILL),
        ("requirements", signal.SIGINT),
    ],
)
def test_killed_at_each_phase_then_rerun_completes(phase, sig, base_env, tmp_path, repo, wheels):
    served = tmp_path / "served"
    served.mkdir()
    bare_for_http(repo, served / "OneTrainer.git")
    os.symlink(wheels, served / "wheels")
    server = serve(served)
    server.delay_s = 30  # every request hangs until released: the install is caught mid-phase
    target = tmp_path / "ot"
    env = {**base_env, **pip_env(f"{server.url}/wheels/")}
    hold = _hold_pyenv_local(tmp_path, env) if phase == "python" else None
    argv = [otdoctor_exe(), "install", "--dir", str(target), "--repo-url", f"{server.url}/OneTrainer.git", "--yes"]
    if phase != "checkout":
        server.delay_s = 0
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        log = target / "otdoctor-install.log"
        if phase == "checkout":
            server.wait_for("/OneTrainer.git/")
        elif phase in ("python", "venv"):
            _wait_for_log(log, f"--- phase {phase}", proc)
            if phase == "venv":  # mid-creation: the folder exists, ensurepip is still running
                deadline = time.monotonic() + 60
                while not (target / "venv").exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
        else:
            # The phase's marker is logged before pip starts: from then on pip's requests hang,
            # and the kill lands while pip is waiting on the index.
            _wait_for_log(log, f"--- phase {phase}", proc)
            server.delay_s = 30
            while not server.requests.empty():
                server.requests.get()
            server.wait_for("/wheels/")
        os.killpg(proc.pid, sig)  # SIGINT to the group: what Ctrl-C in a terminal sends
        proc.wait(timeout=30)
    finally:
        server.release.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if sig == signal.SIGINT:
        _, err = proc.communicate()
        assert proc.returncode == 130 and b"interrupted" in err and b"Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    state = _digest_state(target)
    assert f'"{phase}"' not in state  # the state never claims the phase that was cut short

    server.delay_s = 0
    server.release.clear()
    if hold is not None:
        hold.unlink()
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    _assert_installed(target, repo)
    server.shutdown()


@pytest.mark.slow
def test_install_uses_the_index_pip_is_configured_with(run_cli, tmp_path, repo, wheels):
    """pip's own configuration reaches pip untouched (a regression: the pre-flight once set
    PIP_NO_INDEX for the whole process)."""
    server = serve(simple_index(wheels, tmp_path / "index"))
    target = tmp_path / "ot"
    res = run_cli(
        "install",
        "--dir",
        str(target),
        "--repo-url",
        str(repo),
        "--yes",
        env={"PIP_INDEX_URL": f"{server.url}/simple/", "PIP_NO_CACHE_DIR": "1"},
        timeout=300,
    )
    server.shutdown()
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    seen = []
    while not server.requests.empty():
        seen.append(server.requests.get())
    assert "/simple/tinyglobal/" in seen and "/simple/setuptools/" in seen
    _assert_installed(target, repo)


@pytest.mark.slow
def test_failure_names_phase_log_and_last_lines(run_cli, tmp_path, wheels):
    repo = upstream(tmp_path / "up", global_requirements=["tinyglobal==1.0", "nosuchpackage==9.9"])
    target = tmp_path / "ot"
    res = _install(run_cli, target, repo, wheels)
    assert res.returncode == 1
    assert "install failed in phase 'requirements'" in res.stderr
    assert "nosuchpackage" in res.stderr  # pip's own last lines
    assert f"full log: {target / 'otdoctor-install.log'}" in res.stderr
    assert "Traceback" not in res.stderr
    state = (target / ".otdoctor-install.json").read_text()
    assert '"pip"' in state and '"requirements"' not in state


def test_refuses_to_touch_a_foreign_folder(run_cli, tmp_path, repo, wheels):
    target = tmp_path / "notes"
    target.mkdir()
    (target / "diary.txt").write_text("private")
    before = tree_digest(target)
    res = _install(run_cli, target, repo, wheels)
    assert res.returncode == 1
    assert "is not a git checkout and is not empty" in res.stderr
    assert tree_digest(target) == before

    other = upstream(tmp_path / "other")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(other), str(clone))
    res = _install(run_cli, clone, repo, wheels)
    assert res.returncode == 1 and "is a checkout of" in res.stderr


def test_dir_below_a_file_is_a_one_line_error(run_cli, tmp_path, repo, wheels):
    (tmp_path / "notes.txt").write_text("mine")
    for extra in ((), ("--dry-run",)):  # was an internal error (NotADirectoryError), and a dry-run plan
        res = _install(run_cli, tmp_path / "notes.txt" / "OneTrainer", repo, wheels, *extra)
        assert res.returncode == 2, res.stdout + res.stderr
        assert (
            res.stderr.splitlines()[0] == f"otdoctor: error: cannot create {tmp_path / 'notes.txt' / 'OneTrainer'}: "
            f"{tmp_path / 'notes.txt'} is a file, not a folder"
        )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_mistyped_repo_url_can_be_corrected_in_the_same_dir(run_cli, tmp_path, repo, wheels):
    target = tmp_path / "ot"
    res = _install(run_cli, target, tmp_path / "no-such-repo", wheels)
    assert res.returncode == 1 and "git fetch origin" in res.stderr and "Traceback" not in res.stderr
    # Was: "ot is a checkout of .../no-such-repo" forever, though nothing was ever fetched into it.
    res = _install(run_cli, target, repo, wheels, "--ref", "no-such-branch")  # stops right after the fetch
    assert "is a checkout of" not in res.stderr
    assert (
        res.returncode == 1 and f"--ref no-such-branch is neither a branch, a tag nor a commit of {repo}" in res.stderr
    )
    assert git(target, "remote", "get-url", "origin").strip() == str(repo)
    # A clone with commits keeps refusing another repository.
    other = upstream(tmp_path / "other")
    res = _install(run_cli, target, other, wheels, "--ref", "no-such-branch")
    assert res.returncode == 1 and "is a checkout of" in res.stderr


def test_local_changes_are_never_clobbered_by_ref(run_cli, tmp_path, repo, wheels):
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "README.md").write_text("new\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "second")
    target = tmp_path / "ot"
    git(tmp_path, "clone", "-q", str(repo), str(target))
    (target / "lib.include.sh").write_text((target / "lib.include.sh").read_text() + "# my tweak\n")
    res = _install(run_cli, target, repo, wheels, "--ref", first)
    assert res.returncode == 1
    assert "local changes (lib.include.sh)" in res.stderr
    assert "# my tweak" in (target / "lib.include.sh").read_text()


@pytest.mark.slow
def test_ref_pins_a_commit(run_cli, tmp_path, repo, wheels):
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "README.md").write_text("new\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "second")
    target = tmp_path / "ot"
    res = _install(run_cli, target, repo, wheels, "--ref", first, "--dry-run")
    assert f"checkout {first}" in res.stdout
    res = _install(run_cli, target, repo, wheels, "--ref", first)
    assert "OneTrainer is installed" in res.stdout, res.stderr
    assert git(target, "rev-parse", "HEAD").strip() == first


@pytest.mark.parametrize(
    "args, message",
    [
        (["--python", "3.9"], "outside what OneTrainer accepts"),
        (["--python", "3.11.0"], "3.11.0 exactly is rejected"),
        (["--python", "three"], "is not a version"),
        (["--platform", "tpu"], "unknown --platform"),
    ],
)
def test_bad_arguments_are_one_line_errors(run_cli, tmp_path, repo, wheels, args, message):
    res = _install(run_cli, tmp_path / "ot", repo, wheels, *args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "ot").exists()


def test_space_in_path_is_refused_with_the_way_out(run_cli, tmp_path, repo, wheels):
    res = _install(run_cli, tmp_path / "My Projects" / "OneTrainer", repo, wheels)
    assert res.returncode == 1
    assert "contains a space" in res.stderr and "--dir" in res.stderr
    assert not (tmp_path / "My Projects").exists()


# Platform choice: a recorded nvidia-smi on PATH stands in for the GPU --------------------------
SMI_HEADER = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI {driver}             Driver Version: {driver}     CUDA Version: {cuda}     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|   0  {name}        Off |   00000000:01:00.0  On |                  N/A |
+-----------------------------------------+------------------------+----------------------+
"""


def _fake_smi(bin_dir: Path, driver: str, cuda: str, name: str, cap: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    header = SMI_HEADER.format(driver=driver, cuda=cuda, name=name)
    smi.write_text(
        "#!/bin/sh\n"
        'case "$1" in --query-gpu=*) '
        f"echo '{name}, {driver}, {cap}' ;; *) cat <<'EOF'\n{header}EOF\n;; esac\n"
    )
    smi.chmod(0o755)


@pytest.mark.parametrize(
    "driver, cuda, name, cap, expected",
    [
        ("580.82.07", "13.0", "NVIDIA GeForce RTX 4090", "8.9", "requirements-cuda.txt"),
        ("550.144.03", "12.4", "NVIDIA GeForce RTX 3090", "8.6", "requirements-cuda-legacy.txt"),
        ("580.82.07", "13.0", "NVIDIA GeForce GTX 1080 Ti", "6.1", "requirements-cuda-legacy.txt"),
    ],
)
def test_platform_follows_driver_and_gpu_generation(
    run_cli, tmp_path, repo, wheels, base_env, driver, cuda, name, cap, expected
):
    _fake_smi(tmp_path / "bin", driver, cuda, name, cap)
    env = {"PATH": f"{tmp_path / 'bin'}:{base_env['PATH']}"}
    res = _install(run_cli, tmp_path / "ot", repo, wheels, "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    assert f"-r requirements-global.txt -r {expected}" in res.stdout


def test_blackwell_on_an_old_driver_says_which_driver(run_cli, tmp_path, repo, wheels, base_env):
    _fake_smi(tmp_path / "bin", "570.133.07", "12.8", "NVIDIA GeForce RTX 5090", "12.0")
    env = {"PATH": f"{tmp_path / 'bin'}:{base_env['PATH']}"}
    res = _install(run_cli, tmp_path / "ot", repo, wheels, "--dry-run", env=env)
    assert res.returncode == 1
    assert "580.65.06" in res.stderr and "12.0" in res.stderr


def test_platform_override_by_env_and_flag(run_cli, tmp_path, repo, wheels):
    res = _install(
        run_cli, tmp_path / "ot", repo, wheels, "--dry-run", env={"OT_PLATFORM_REQUIREMENTS": "requirements-rocm.txt"}
    )
    assert "-r requirements-rocm.txt" in res.stdout and "OT_PLATFORM_REQUIREMENTS" in res.stdout
    res = _install(run_cli, tmp_path / "ot", repo, wheels, "--dry-run", "--platform", "cuda-legacy")
    assert "-r requirements-cuda-legacy.txt" in res.stdout


def test_missing_python_is_offered_with_build_packages(run_cli, tmp_path, repo, wheels):
    target = tmp_path / "ot"
    res = _install(run_cli, target, repo, wheels, "--python", "3.12.99", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "pyenv install 3.12.99" in res.stdout and "libssl-dev" in res.stdout and "tk-dev" in res.stdout
    # Without a terminal and without --yes, nothing starts.
    res = run_cli("install", "--dir", str(target), "--repo-url", str(repo), "--python", "3.12.99", env=pip_env(wheels))
    assert res.returncode == 2 and "--yes" in res.stderr
    assert not target.exists()
    # With --yes pyenv is asked to build it; pyenv has no such version: the failure names the phase.
    res = _install(run_cli, target, repo, wheels, "--python", "3.12.99")
    assert res.returncode == 1
    assert "install failed in phase 'python'" in res.stderr and "3.12.99" in res.stderr
    assert "full log:" in res.stderr


@pytest.mark.slow
def test_a_token_in_the_repository_url_stays_out_of_output_log_and_state(run_cli, tmp_path, repo, wheels):
    served = tmp_path / "served"
    served.mkdir()
    bare_for_http(repo, served / "OneTrainer.git")
    server = serve(served)
    token = "ghp_" + "a1B2c3D4e5" * 4
    url = f"http://ana:{token}@127.0.0.1:{server.server_address[1]}/OneTrainer.git"
    target = tmp_path / "ot"
    res = _install(run_cli, target, url, wheels)
    server.shutdown()
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    assert "http://***@127.0.0.1" in res.stdout
    for text in (
        res.stdout,
        res.stderr,
        (target / "otdoctor-install.log").read_text(),
        (target / ".otdoctor-install.json").read_text(),
    ):
        assert token not in text


@pytest.mark.slow
def test_existing_clone_with_local_changes_is_reused_as_it_is(run_cli, tmp_path, repo, wheels):
    target = tmp_path / "ot"
    git(tmp_path, "clone", "-q", str(repo), str(target))
    git(repo, "checkout", "-q", "-b", "dev")
    (repo / "README.md").write_text("dev\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "dev work")
    head = git(target, "rev-parse", "HEAD")
    (target / "lib.include.sh").write_text((target / "lib.include.sh").read_text() + "# my tweak\n")
    res = _install(run_cli, target, repo, wheels)
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    assert "reusing" in res.stdout
    assert git(target, "rev-parse", "HEAD") == head and "# my tweak" in (target / "lib.include.sh").read_text()
    # A branch as --ref on a fresh clone: checked out and tracking origin, so update.sh's `git pull` works.
    fresh = tmp_path / "fresh"
    res = _install(run_cli, fresh, repo, wheels, "--ref", "dev")
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    assert git(fresh, "rev-parse", "--abbrev-ref", "HEAD").strip() == "dev"
    assert git(fresh, "rev-parse", "--abbrev-ref", "dev@{upstream}").strip() == "origin/dev"
