"""venv.* checks and the launcher's platform choice: real venvs, real wheels installed by pip, a real
editable git requirement, real torch; run through the real `otdoctor` console script."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from otdoctor.onetrainer.platforms import choose_requirements
from otdoctor.probe import Probe
from tests.support.factory import (
    PYENV_ROOT,
    build_wheel,
    git,
    make_onetrainer,
    make_venv,
    pip_install,
    pyenv_python,
    pyenv_version,
)
from tests.support.pythons import check_json, copy_pyenv_version

# A venv Python other than the one running otdoctor, so a marker judged for the wrong interpreter
# gives a different answer.
VENV_PY = "3.10" if sys.version_info[:2] != (3, 10) else "3.12"
VENV_VERSION = pyenv_version(VENV_PY)

# An in-tree PEP 517/660 build backend: `pip install -e git+...` really clones, builds and installs
# it without any index (OneTrainer's diffusers and mgds lines have this shape).
BACKEND = """
import base64, hashlib, os, zipfile
NAME, VERSION = "delta", "0.1"

def _wheel(directory, files):
    dist = NAME + "-" + VERSION + ".dist-info"
    files[dist + "/METADATA"] = "Metadata-Version: 2.1\\nName: " + NAME + "\\nVersion: " + VERSION + "\\n"
    files[dist + "/WHEEL"] = "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    name = NAME + "-" + VERSION + "-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        for fname, text in files.items():
            data = text.encode()
            zf.writestr(fname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (fname, digest, len(data)))
        record.append(dist + "/RECORD,,")
        zf.writestr(dist + "/RECORD", "\\n".join(record) + "\\n")
    return name

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("delta/__init__.py") as fh:
        return _wheel(wheel_directory, {"delta/__init__.py": fh.read()})

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"_delta_editable.pth": os.path.abspath(".") + "\\n"})
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("wheels")
    for name, version in [
        ("alpha", "1.0"),
        ("beta", "2.0"),
        ("beta", "2.1"),
        ("beta", "2.2"),
        ("epsilon", "1.0"),
        ("torchlike", "1.0+cpu"),
        ("setuptools", "82.0.0"),
    ]:
        build_wheel(d, name, version)
    return d


@pytest.fixture(scope="module")
def delta_repo(tmp_path_factory) -> tuple[Path, str, str]:
    """A git repository of the editable package with two commits: (repo, first, second)."""
    repo = tmp_path_factory.mktemp("delta")
    (repo / "delta").mkdir()
    (repo / "backend.py").write_text(BACKEND)
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    (repo / "delta" / "__init__.py").write_text("WHERE = 'first'\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "delta" / "__init__.py").write_text("WHERE = 'second'\n")
    git(repo, "commit", "-q", "-am", "second")
    second = git(repo, "rev-parse", "HEAD").strip()
    return repo, first, second


def editable_line(repo: Path, ref: str) -> str:
    return f"-e git+file://{repo}@{ref}#egg=delta"


def global_lines(delta_repo, beta="beta>=2.1", ref=None) -> list[str]:
    repo, _first, second = delta_repo
    return [
        "# OneTrainer-shaped requirements-global.txt",
        "alpha==1.0",
        beta,
        "gamma==1.0; sys_platform == 'win32'  # Windows only",
        editable_line(repo, ref or second),
    ]


@pytest.fixture(scope="module")
def shared_checkout(tmp_path_factory, wheels, delta_repo) -> Path:
    """A checkout in the launcher's own layout (OneTrainer/venv, made by the pinned Python) with
    what global_lines() asks for installed: alpha 1.0, beta 2.1, torchlike 1.0+cpu and an editable
    clone of delta at the second commit (in venv/src, as pip puts it). Other tests point their own
    checkouts at this venv through OT_PYTHON_VENV and never change it."""
    ot = make_onetrainer(
        tmp_path_factory.mktemp("shared") / "OneTrainer",
        global_requirements=global_lines(delta_repo),
        python_version=VENV_PY,
    )
    venv = make_venv(ot / "venv", pyenv_python(VENV_PY))
    repo, _first, second = delta_repo
    pip_install(venv, "alpha==1.0", "beta==2.1", "torchlike==1.0+cpu", find_links=wheels)
    pip_install(venv, "-e", f"git+file://{repo}@{second}#egg=delta", find_links=wheels)
    return ot


@pytest.fixture(scope="module")
def shared_venv(shared_checkout) -> Path:
    return shared_checkout / "venv"


def pip_into(target: Path, pip_venv: Path, *args: str, find_links: Path) -> None:
    """Install into a venv made --without-pip, with another venv's pip (`pip --python`): a real
    install that skips the seconds ensurepip takes."""
    subprocess.run(
        [
            str(pip_venv / "bin" / "python"),
            "-m",
            "pip",
            "--python",
            str(target / "bin" / "python"),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(find_links),
            *args,
        ],
        check=True,
        capture_output=True,
    )


def checkout(tmp_path: Path, delta_repo, venv: Path | None = None, **kw) -> tuple[Path, dict[str, str]]:
    """A checkout whose launcher would use `venv` (through OT_PYTHON_VENV, as the launcher allows)."""
    kw.setdefault("global_requirements", global_lines(delta_repo))
    kw.setdefault("python_version", VENV_PY)
    ot = make_onetrainer(tmp_path / "OneTrainer", **kw)
    env = {"OT_PYTHON_VENV": str(venv)} if venv is not None else {}
    return ot, env


# venv.exists ------------------------------------------------------------------------------------
def test_no_venv_fails_and_points_to_install(run_cli, tmp_path, delta_repo):
    ot, env = checkout(tmp_path, delta_repo)
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv", env=env)
    assert proc.returncode == 1
    exists = res["venv.exists"]
    assert exists["status"] == "fail"
    assert exists["summary"] == f"no venv at {ot / 'venv'}"
    assert exists["fix"]["commands"] == [f"cd {ot}", "./install.sh"]
    assert "otdoctor install" in exists["fix"]["summary"]
    for dependent in ("venv.interpreter", "venv.python-version", "venv.pip", "venv.requirements", "venv.torch"):
        assert res[dependent]["status"] == "skip"


def test_half_created_venv_is_named(run_cli, tmp_path, delta_repo):
    ot, env = checkout(tmp_path, delta_repo)
    (ot / "venv" / "lib").mkdir(parents=True)
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.exists", env=env)
    assert res["venv.exists"]["status"] == "fail"
    assert "has no bin/activate" in res["venv.exists"]["summary"]
    assert res["venv.exists"]["fix"]["commands"] == [f"cd {ot}", "rm -rf venv", "./install.sh"]


# A healthy venv ---------------------------------------------------------------------------------
def test_healthy_venv_in_the_checkout(run_cli, shared_checkout):
    """The launcher's own layout: OneTrainer/venv, made by the pinned Python, requirements installed."""
    ot, env = shared_checkout, {}
    assert (ot / "venv" / "src" / "delta" / ".git").exists()  # pip cloned it where OneTrainer's land

    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv", "--skip", "venv.torch", env=env)
    assert proc.returncode == 0, proc.stdout
    assert res["venv.exists"]["status"] == "ok"
    interp = res["venv.interpreter"]
    assert interp["status"] == "ok" and f"Python {VENV_VERSION}" in interp["summary"]
    assert res["venv.python-version"]["status"] == "ok"
    pip = res["venv.pip"]
    assert pip["status"] == "ok" and pip["summary"].startswith("pip ") and pip["data"]["cached"] is False
    req = res["venv.requirements"]
    assert req["status"] == "ok"
    # alpha, beta and delta; gamma is for Windows only.
    assert req["summary"].startswith("all 3 requirements satisfied (requirements-global.txt + requirements-default.txt")
    assert req["data"]["not_for_this_platform"] == 1
    assert req["data"]["platform_file"] == "requirements-default.txt"

    # The second run reuses pip's answer instead of starting pip again.
    _, res2, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.pip", env=env)
    assert res2["venv.pip"]["status"] == "ok" and res2["venv.pip"]["data"]["cached"] is True


# venv.requirements: the "git pull without update.sh" cases ---------------------------------------
def test_out_of_date_requirements_after_a_pull(run_cli, tmp_path, shared_venv, delta_repo):
    ot, env = checkout(tmp_path, delta_repo, shared_venv)
    # What a `git pull` brings: a newer beta and a new dependency, without ./update.sh.
    lines = global_lines(delta_repo, beta="beta==2.2") + ["epsilon==1.0"]
    (ot / "requirements-global.txt").write_text("\n".join(lines) + "\n")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    assert proc.returncode == 1
    req = res["venv.requirements"]
    assert req["status"] == "fail"
    assert req["summary"] == "2 of 4 requirements not satisfied: 1 at the wrong version, 1 missing"
    assert "beta: 2.1 installed, requirements-global.txt:3 asks for ==2.2" in req["details"]
    assert "epsilon: not installed (requirements-global.txt:6 asks for `epsilon==1.0`)" in req["details"]
    assert req["fix"]["commands"] == [
        f"cd {ot}",
        f"{shared_venv}/bin/python -m pip install --upgrade --upgrade-strategy eager "
        "-r requirements-global.txt -r requirements-default.txt",
    ]
    assert "git pull" in req["why"]


def test_the_fix_command_really_fixes_it(run_cli, tmp_path, wheels, delta_repo):
    """Run the suggested command (offline, from the test's wheels) and check again."""
    ot, env = checkout(tmp_path, delta_repo)
    venv = make_venv(ot / "venv", pyenv_python(VENV_PY))
    pip_install(venv, "alpha==1.0", "beta==2.0", find_links=wheels)
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    assert res["venv.requirements"]["status"] == "fail"
    commands = res["venv.requirements"]["fix"]["commands"]
    pip_env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(" && ".join(commands), shell=True, check=True, capture_output=True, env=pip_env)
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    assert res["venv.requirements"]["status"] == "ok", res["venv.requirements"]
    assert proc.returncode == 0


def test_editable_checkout_at_another_commit(run_cli, tmp_path, shared_venv, delta_repo):
    repo, first, second = delta_repo
    ot, env = checkout(tmp_path, delta_repo, shared_venv, global_requirements=global_lines(delta_repo, ref=first))
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    req = res["venv.requirements"]
    assert req["status"] == "fail"
    assert f"delta: checkout at {second[:10]}, requirements-global.txt:5 asks for @{first[:10]}" in req["details"]
    assert req["data"]["mismatches"][0]["kind"] == "commit"


def test_editable_requirement_installed_from_a_wheel(run_cli, tmp_path, shared_venv, delta_repo):
    ot, env = checkout(
        tmp_path,
        delta_repo,
        shared_venv,
        global_requirements=[
            "-e git+https://example.invalid/alpha.git@main#egg=alpha",
        ],
    )
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    req = res["venv.requirements"]
    assert req["status"] == "fail"
    assert req["data"]["mismatches"][0]["kind"] == "not-editable"
    assert "alpha: 1.0 installed from a wheel" in req["details"][0]


def test_markers_are_judged_for_the_venvs_python(run_cli, tmp_path, shared_venv, delta_repo):
    mm = ".".join(VENV_VERSION.split(".")[:2])
    ot, env = checkout(
        tmp_path,
        delta_repo,
        shared_venv,
        global_requirements=[
            f"alpha==0.5; python_version == '{mm}'",  # applies to the venv: wrong version
            f"zeta==9.9; python_version != '{mm}'",  # applies to otdoctor's own Python only: ignored
        ],
    )
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    req = res["venv.requirements"]
    assert req["status"] == "fail"
    assert req["summary"] == "1 of 1 requirements not satisfied: 1 at the wrong version"
    assert req["details"][0] == "alpha: 1.0 installed, requirements-global.txt:1 asks for ==0.5"


def test_options_includes_and_local_versions(run_cli, tmp_path, shared_venv, delta_repo):
    repo, _first, second = delta_repo
    ot, env = checkout(
        tmp_path,
        delta_repo,
        shared_venv,
        global_requirements=[
            "-r requirements-extra.txt",
            "--extra-index-url https://download.pytorch.org/whl/cu130",
            "-i https://pypi.org/simple",
            "--find-links /nowhere",
            "torchlike==1.0 \\",
            "    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ],
    )
    (ot / "requirements-extra.txt").write_text("alpha==1.0\n" + editable_line(repo, second[:8]) + "\n")
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    req = res["venv.requirements"]
    assert req["status"] == "ok", req
    assert req["data"]["checked"] == 3  # alpha and delta (short commit) from the include, torchlike
    assert "https://download.pytorch.org/whl/cu130" in req["data"]["index_urls"]

    # A CUDA build asked for, a CPU build installed: local versions count.
    (ot / "requirements-global.txt").write_text("torchlike==1.0+cu130\n")
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    assert (
        res["venv.requirements"]["details"][0]
        == "torchlike: 1.0+cpu installed, requirements-global.txt:1 asks for ==1.0+cu130"
    )


def test_platform_file_from_a_recorded_nvidia_machine(run_cli, tmp_path, shared_venv, delta_repo):
    """/dev/nvidia0 and nvidia-smi (printing a real header) make the launcher pick requirements-cuda.txt."""
    ot, env = checkout(
        tmp_path,
        delta_repo,
        shared_venv,
        platform_requirements={
            "requirements-cuda.txt": [
                "--extra-index-url https://download.pytorch.org/whl/cu130",
                "torchlike==1.0+cu130",
            ],
            "requirements-default.txt": ["torchlike==1.0"],
        },
    )
    sysroot, bin_dir = fake_nvidia(tmp_path, cuda="13.0")
    env.update(OTDOCTOR_SYSROOT=str(sysroot), PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    req = res["venv.requirements"]
    assert req["data"]["platform_file"] == "requirements-cuda.txt"
    assert req["status"] == "fail"
    assert req["details"][0] == "torchlike: 1.0+cpu installed, requirements-cuda.txt:2 asks for ==1.0+cu130"
    assert req["details"][-1].startswith("the launcher installs requirements-cuda.txt here: NVIDIA GPU (/dev/nvidia0)")
    assert "-r requirements-cuda.txt" in req["fix"]["commands"][-1]
    # Override as the launcher allows: the default file is satisfied.
    env["OT_PLATFORM_REQUIREMENTS"] = "requirements-default.txt"
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    assert res["venv.requirements"]["status"] == "ok"
    assert res["venv.requirements"]["data"]["platform_reason"] == "OT_PLATFORM_REQUIREMENTS=requirements-default.txt"


# The platform choice (launcher logic) -------------------------------------------------------------
SMI_HEADER = """\
Tue Aug 12 10:14:03 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI {driver}             Driver Version: {driver}     CUDA Version: {cuda}     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA GeForce RTX 4090        Off |   00000000:01:00.0  On |                  Off |
|  0%   41C    P8             21W /  450W |    1024MiB /  24564MiB |      2%      Default |
+-----------------------------------------+------------------------+----------------------+
"""


def fake_nvidia(
    tmp_path: Path, cuda: str = "13.0", driver: str = "580.65.06", dev: bool = True, on_path: bool = True
) -> tuple[Path, Path]:
    """(sysroot, bin dir): a /dev/nvidia0 under the sysroot and an `nvidia-smi` printing a real header."""
    sysroot = tmp_path / "sysroot"
    (sysroot / "dev").mkdir(parents=True, exist_ok=True)
    if dev:
        (sysroot / "dev" / "nvidia0").touch()
    bin_dir = tmp_path / "smi-bin"
    bin_dir.mkdir(exist_ok=True)
    if on_path:
        smi = bin_dir / "nvidia-smi"
        (tmp_path / "smi.txt").write_text(SMI_HEADER.format(cuda=cuda, driver=driver))
        smi.write_text(f"#!/bin/sh\ncat {tmp_path / 'smi.txt'}\n")
        smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return sysroot, bin_dir


def probe_for(tmp_path: Path, sysroot: Path, bin_dir: Path | None = None, **env: str) -> Probe:
    path = f"{bin_dir}:/usr/bin:/bin" if bin_dir else "/usr/bin:/bin"
    return Probe(env={"PATH": path, "HOME": str(tmp_path), **env}, sysroot=sysroot)


def test_platform_cuda_13_driver(tmp_path):
    ot = make_onetrainer(tmp_path / "OT", git_init=False)
    sysroot, bin_dir = fake_nvidia(tmp_path, cuda="13.0")
    choice = choose_requirements(probe_for(tmp_path, sysroot, bin_dir), ot)
    assert (choice.platform, choice.file, choice.cuda_version) == ("cuda", "requirements-cuda.txt", "13.0")
    assert choice.reason == "NVIDIA GPU (/dev/nvidia0), driver supports CUDA 13.0"
    assert choice.exists is True and choice.files == ("requirements-global.txt", "requirements-cuda.txt")


def test_platform_older_driver_gets_the_legacy_file(tmp_path):
    ot = make_onetrainer(tmp_path / "OT", git_init=False)
    sysroot, bin_dir = fake_nvidia(tmp_path, cuda="12.8", driver="570.133.07", dev=False)
    choice = choose_requirements(probe_for(tmp_path, sysroot, bin_dir), ot)
    assert choice.file == "requirements-cuda-legacy.txt"
    assert choice.reason == "NVIDIA GPU (nvidia-smi on PATH), driver supports only CUDA 12.8 (< 13)"
    # A checkout from before the legacy file existed always installs requirements-cuda.txt.
    (ot / "requirements-cuda-legacy.txt").unlink()
    assert choose_requirements(probe_for(tmp_path, sysroot, bin_dir), ot).file == "requirements-cuda.txt"


def test_platform_wsl_nvidia_smi_and_unreadable_header(tmp_path):
    sysroot = tmp_path / "sysroot"
    wsl = sysroot / "usr" / "lib" / "wsl" / "lib"
    wsl.mkdir(parents=True)
    (wsl / "nvidia-smi").write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n"
    )
    (wsl / "nvidia-smi").chmod(0o755)
    choice = choose_requirements(probe_for(tmp_path, sysroot), None)
    assert choice.file == "requirements-cuda.txt" and choice.path is None
    assert choice.reason.startswith("NVIDIA GPU (/usr/lib/wsl/lib/nvidia-smi); CUDA version unknown (")
    assert "exited with 9" in choice.reason


def test_platform_rocm_default_and_override(tmp_path):
    sysroot = tmp_path / "sysroot"
    (sysroot / "dev").mkdir(parents=True)
    assert choose_requirements(probe_for(tmp_path, sysroot)).file == "requirements-default.txt"
    (sysroot / "dev" / "kfd").touch()
    rocm = choose_requirements(probe_for(tmp_path, sysroot))
    assert (rocm.platform, rocm.file, rocm.reason) == ("rocm", "requirements-rocm.txt", "AMD GPU (/dev/kfd)")
    forced = choose_requirements(probe_for(tmp_path, sysroot, OT_PLATFORM_REQUIREMENTS="requirements-default.txt"))
    assert (forced.platform, forced.file) == ("override", "requirements-default.txt")
    detect = choose_requirements(probe_for(tmp_path, sysroot, OT_PLATFORM_REQUIREMENTS="detect"))
    assert detect.platform == "rocm"


def test_missing_platform_file_is_a_finding(run_cli, tmp_path, shared_venv, delta_repo):
    ot, env = checkout(tmp_path, delta_repo, shared_venv)
    env["OT_PLATFORM_REQUIREMENTS"] = "requirements-nope.txt"
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    req = res["venv.requirements"]
    assert proc.returncode == 1 and req["status"] == "fail"
    assert "cannot read" in req["summary"] and "requirements-nope.txt" in req["summary"]


# venv.interpreter and venv.python-version ----------------------------------------------------------
def test_venv_whose_base_python_was_removed(run_cli, tmp_path, delta_repo):
    """`pyenv uninstall` of the venv's Python: copy a pyenv version, make the venv from the copy,
    delete the copy."""
    base = copy_pyenv_version(VENV_PY, tmp_path / "pyenv-copy" / "versions" / VENV_VERSION)
    ot, env = checkout(tmp_path, delta_repo)
    make_venv(ot / "venv", base / "bin" / "python3", with_pip=False)
    shutil.rmtree(base)
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv", env=env)
    assert proc.returncode == 1
    interp = res["venv.interpreter"]
    assert interp["status"] == "fail"
    assert interp["summary"] == (
        f"the venv's base Python {VENV_VERSION} is gone: pyvenv.cfg points to {base / 'bin'}, which no longer exists"
    )
    assert interp["fix"]["commands"] == [f"cd {ot}", "rm -rf venv", "pyenv local 3.10", "./install.sh"]
    assert f"pyenv install {VENV_VERSION}" in interp["details"][0]
    for dependent in ("venv.python-version", "venv.pip", "venv.requirements", "venv.torch"):
        assert res[dependent]["status"] == "skip"

    text = run_cli("check", "--ot-dir", str(ot), "--only", "venv.interpreter", env=env).stdout
    assert "✗ venv interpreter (venv.interpreter): the venv's base Python" in text
    assert "rm -rf venv" in text


def test_venv_version_differs_from_python_version_file(run_cli, tmp_path, shared_venv, delta_repo):
    other = "3.12" if VENV_PY != "3.12" else "3.11"
    ot, env = checkout(tmp_path, delta_repo, shared_venv, python_version=other)
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.python-version", env=env)
    assert proc.returncode == 0
    pv = res["venv.python-version"]
    assert pv["status"] == "warn"
    assert pv["summary"] == f"the venv runs Python {VENV_VERSION}, but {ot / '.python-version'} asks for {other}"
    assert pv["fix"]["commands"][-1] == "./install.sh"


def test_venv_with_a_python_outside_the_range(run_cli, tmp_path, delta_repo):
    ot, env = checkout(tmp_path, delta_repo, python_version="3.9")
    make_venv(ot / "venv", pyenv_python("3.9"), with_pip=False)
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.python-version", env=env)
    assert proc.returncode == 1
    pv = res["venv.python-version"]
    assert pv["status"] == "fail"
    assert pv["summary"] == f"the venv runs Python {pyenv_version('3.9')} is too old for OneTrainer (needs >= 3.10)"
    assert "rm -rf venv" in pv["fix"]["commands"]


# venv.pip ---------------------------------------------------------------------------------------
def test_venv_without_pip_then_setuptools_82(run_cli, tmp_path, wheels, delta_repo):
    ot, env = checkout(tmp_path, delta_repo)
    make_venv(ot / "venv", pyenv_python(VENV_PY), with_pip=False)
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.pip", env=env)
    assert proc.returncode == 1
    pip = res["venv.pip"]
    assert pip["status"] == "fail" and pip["summary"] == "pip is not installed in the venv"
    assert pip["fix"]["commands"] == [f"cd {ot}", "venv/bin/python -m ensurepip --upgrade"]
    # The fix works, and a failure was not cached: the next run sees pip.
    subprocess.run(f"cd {ot} && venv/bin/python -m ensurepip --upgrade", shell=True, check=True, capture_output=True)
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.pip", env=env)
    assert res["venv.pip"]["status"] == "ok"

    # setuptools 82 removed pkg_resources: a warning with the launcher's pin as the fix.
    pip_install(ot / "venv", "setuptools==82.0.0", find_links=wheels)
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.pip", env=env)
    pip = res["venv.pip"]
    assert pip["status"] == "warn"
    assert "setuptools 82.0.0 is installed" in pip["summary"] and "pkg_resources" in pip["why"]
    assert pip["fix"]["commands"][-1] == "venv/bin/python -m pip install setuptools==81.0.0"


# venv.torch -------------------------------------------------------------------------------------
def test_torch_missing(run_cli, tmp_path, shared_venv, delta_repo):
    ot, env = checkout(tmp_path, delta_repo, shared_venv)
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.torch", env=env)
    torch = res["venv.torch"]
    assert torch["status"] == "fail" and torch["summary"] == "torch is not installed in the venv"
    assert "-r requirements-default.txt" in torch["fix"]["commands"][-1]


def test_torch_that_does_not_import(run_cli, tmp_path, wheels, delta_repo, shared_venv):
    """A torch whose import fails the way a half-installed CUDA build does (a missing .so)."""
    ot, env = checkout(tmp_path, delta_repo)
    venv = make_venv(ot / "venv", pyenv_python(VENV_PY), with_pip=False)
    broken = build_wheel(
        tmp_path / "broken",
        "torch",
        "2.12.0+cu130",
        modules={
            "torch/__init__.py": (
                "raise ImportError('libcudnn.so.9: cannot open shared object file: No such file or directory')\n"
            ),
            "torch/version.py": "__version__ = '2.12.0+cu130'\ncuda = '13.0'\nhip = None\n",
        },
    )
    pip_into(venv, shared_venv, str(broken), find_links=wheels)
    for _attempt in range(2):  # a failed import is not cached: the second run imports again
        proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.torch", env=env)
        torch = res["venv.torch"]
        assert proc.returncode == 1
        assert torch["status"] == "fail"
        assert torch["summary"] == (
            "torch 2.12.0+cu130 (CUDA 13.0 build) is installed but `import torch` fails: "
            "ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory"
        )
        assert torch["data"]["facts_cached"] is False
        assert torch["data"]["build"] == "cuda" and torch["data"]["local_version"] == "cu130"


@pytest.mark.slow
def test_real_cpu_torch_is_reported_and_cached(run_cli, tmp_path, torch_venv, delta_repo):
    ot, env = checkout(tmp_path, delta_repo, torch_venv, python_version="3.11", global_requirements=["torch==2.13.0"])
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv", env=env)
    assert proc.returncode == 0, proc.stdout
    torch = res["venv.torch"]
    assert torch["status"] == "ok"
    assert torch["summary"] == "torch 2.13.0+cpu (CPU-only build) imports"
    data = torch["data"]
    assert (data["version"], data["local_version"], data["cuda"], data["build"], data["cpu_only"]) == (
        "2.13.0+cpu",
        "cpu",
        None,
        "cpu",
        True,
    )
    assert data["importable"] is True and data["cuda_available"] is False
    assert data["facts_cached"] is False
    assert res["venv.requirements"]["status"] == "ok"  # torch==2.13.0 accepts the +cpu build

    # Second run: the answer comes from the cache, torch is not imported again.
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.torch", env=env)
    assert res["venv.torch"]["data"]["facts_cached"] is True
    assert res["venv.torch"]["duration_s"] < 0.5

    # A reinstalled torch (its files rewritten) is imported again.
    version_py = Path(data["path"]) / "version.py"
    st = version_py.stat()
    os.utime(version_py, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.torch", env=env)
    assert res["venv.torch"]["data"]["facts_cached"] is False
    assert res["venv.torch"]["status"] == "ok"


@pytest.mark.slow
def test_cuda_requirement_against_cpu_torch(run_cli, tmp_path, torch_venv, delta_repo):
    ot, env = checkout(
        tmp_path, delta_repo, torch_venv, python_version="3.11", global_requirements=["torch==2.12.0+cu130"]
    )
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.requirements", env=env)
    assert res["venv.requirements"]["details"][0] == (
        "torch: 2.13.0+cpu installed, requirements-global.txt:1 asks for ==2.12.0+cu130"
    )


# The cached import answer is keyed on everything the import depends on (issue 12) -------------------
FAKE_TORCH = {
    # alpha stands for a dependency, as torch needs typing_extensions
    "torch/__init__.py": "import alpha\nfrom torch import cuda, version\n__version__ = version.__version__\n",
    "torch/version.py": "__version__ = '2.13.0+cpu'\ncuda = None\nhip = None\n",
    "torch/cuda.py": "def get_arch_list():\n    return []\n\n\ndef is_available():\n    return False\n",
}


def test_removing_a_dependency_of_torch_is_seen_despite_the_cache(run_cli, tmp_path, wheels, delta_repo, shared_venv):
    """`pip uninstall` of a package torch imports: torch's own files are untouched, the check must
    still import again and say the import fails (it once said "✓ torch imports" from the cache)."""
    ot, env = checkout(tmp_path, delta_repo)
    venv = make_venv(ot / "venv", pyenv_python(VENV_PY), with_pip=False)
    torch_wheel = build_wheel(tmp_path / "torch-wheel", "torch", "2.13.0+cpu", requires=["alpha"], modules=FAKE_TORCH)
    pip_into(venv, shared_venv, str(torch_wheel), "alpha==1.0", find_links=wheels)

    def torch_result() -> dict:
        _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.torch", env=env)
        return res["venv.torch"]

    first, second = torch_result(), torch_result()
    assert first["status"] == "ok" and first["summary"] == "torch 2.13.0+cpu (CPU-only build) imports"
    assert (first["data"]["facts_cached"], second["data"]["facts_cached"]) == (False, True)

    subprocess.run(
        [str(shared_venv / "bin" / "python"), "-m", "pip", "--python", str(venv / "bin" / "python")]
        + ["uninstall", "-y", "-q", "alpha"],
        check=True,
        capture_output=True,
    )
    broken = torch_result()
    assert broken["status"] == "fail", broken
    assert broken["summary"] == (
        "torch 2.13.0+cpu (CPU-only build) is installed but `import torch` fails: "
        "ModuleNotFoundError: No module named 'alpha'"
    )


def test_a_damaged_cache_entry_is_discarded_and_recomputed(
    run_cli, tmp_path, wheels, delta_repo, shared_venv, base_env
):
    import json

    ot, env = checkout(tmp_path, delta_repo)
    venv = make_venv(ot / "venv", pyenv_python(VENV_PY), with_pip=False)
    torch_wheel = build_wheel(tmp_path / "torch-wheel", "torch", "2.13.0+cpu", requires=["alpha"], modules=FAKE_TORCH)
    pip_into(venv, shared_venv, str(torch_wheel), "alpha==1.0", find_links=wheels)
    assert check_json(run_cli, "--ot-dir", str(ot), "--only", "venv", env=env)[1]["venv.torch"]["status"] == "ok"
    cache = Path(base_env["OTDOCTOR_CACHE_DIR"]) / "venv-facts"
    damaged = {"torch": {"torch": 5}, "python": {"ok": "yes", "data": {"dists": ["alpha"]}}, "pip": 7}
    for entry in cache.glob("*.json"):
        stored = json.loads(entry.read_text())
        stored["value"] = damaged[entry.name.split("-")[0]]
        entry.write_text(json.dumps(stored))
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv", env=env)
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert res["venv.torch"]["status"] == "ok" and res["venv.torch"]["data"]["facts_cached"] is False
    assert all(r["status"] != "error" for r in res.values()), res


# Minimal repairs that run as printed (issue 13) ------------------------------------------------------
def _venv_with_a_moved_home(tmp_path: Path, ot: Path) -> Path:
    """A venv made through a link to its Python that was later removed: pyvenv.cfg's `home` names a
    folder that is gone, while venv/bin/python (re-linked to the real interpreter) still runs."""
    real = PYENV_ROOT / "versions" / VENV_VERSION
    link = tmp_path / "old-pyenv-link"
    link.symlink_to(real)
    minor = ".".join(VENV_VERSION.split(".")[:2])
    subprocess.run([str(link / "bin" / f"python{minor}"), "-m", "venv", "--without-pip", str(ot / "venv")], check=True)
    for name in ("python", "python3", f"python{minor}"):
        target = ot / "venv" / "bin" / name
        target.unlink()
        target.symlink_to(real / "bin" / f"python{minor}")
    link.unlink()
    cfg = ot / "venv" / "pyvenv.cfg"  # Python 3.10's venv records the resolved path: name the link as 3.11 does
    named = {"home": f"home = {link / 'bin'}", "executable": f"executable = {link / 'bin' / f'python{minor}'}"}
    lines = [named.get(ln.split("=")[0].strip(), ln) for ln in cfg.read_text().splitlines()]
    cfg.write_text("\n".join(lines) + "\n")
    return real / "bin"


def _run_pasted(commands: list[str], env: dict[str, str]) -> None:
    """The printed commands, pasted into a shell started in another folder."""
    script = "set -e\n" + "\n".join(commands) + "\n"
    res = subprocess.run(["bash", "-c", script], cwd="/", env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_moved_home_is_rewritten_not_rebuilt(run_cli, tmp_path, delta_repo, base_env):
    ot, env = checkout(tmp_path, delta_repo)
    real_home = _venv_with_a_moved_home(tmp_path, ot)
    stale = (ot / "venv" / "pyvenv.cfg").read_text()

    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.interpreter", env=env)
    found = res["venv.interpreter"]
    assert found["status"] == "warn", found
    assert found["summary"].startswith(f"pyvenv.cfg's home points to {tmp_path / 'old-pyenv-link' / 'bin'}, which ")
    assert "venv/bin/python still runs" in found["summary"] and "no rebuild" in found["why"]

    _run_pasted(found["fix"]["commands"], {**base_env, **env})  # the printed command, as printed
    assert f"home = {real_home}\n" in (ot / "venv" / "pyvenv.cfg").read_text()
    assert (
        check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.interpreter", env=env)[1]["venv.interpreter"]["status"]
        == "ok"
    )

    (ot / "venv" / "pyvenv.cfg").write_text(stale)  # the same repair through `otdoctor fix`
    marker = (ot / "venv" / "bin" / "activate").stat().st_ino
    fixed = run_cli("fix", "venv.interpreter", "--ot-dir", str(ot), "--yes", env=env)
    assert f"set home = {real_home}" in fixed.stdout and "not rebuilt" in fixed.stdout, fixed.stdout + fixed.stderr
    assert (ot / "venv" / "bin" / "activate").stat().st_ino == marker  # the same venv, not a new one
    assert (
        check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.interpreter", env=env)[1]["venv.interpreter"]["status"]
        == "ok"
    )


@pytest.mark.slow
def test_venv_rebuild_dry_run_runs_as_pasted(run_cli, tmp_path, wheels, delta_repo, base_env):
    """`fix --dry-run` prints the rebuild; pasted from another folder, it rebuilds the venv."""
    import shutil as _shutil

    from tests.support.installkit import pip_env

    here = _shutil.copytree(wheels, tmp_path / "wheels")  # plus the launcher's setuptools pin
    _shutil.copy2(Path.home() / ".cache" / "otdoctor-test-wheels" / "setuptools-81.0.0-py3-none-any.whl", here)
    ot, env = checkout(tmp_path, delta_repo, global_requirements=["alpha==1.0"], python_version=VENV_VERSION)
    other = "3.12" if VENV_PY != "3.12" else "3.11"
    make_venv(ot / "venv", pyenv_python(other), with_pip=False)  # made by the wrong Python
    env = {**env, **pip_env(here)}
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv.python-version", env=env)
    assert res["venv.python-version"]["status"] in ("warn", "fail")

    dry = run_cli("fix", "venv.python-version", "--ot-dir", str(ot), "--dry-run", env=env)
    lines = dry.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("fix: rebuild")) + 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    commands = [line.strip() for line in lines[start:] if line.startswith(" " * indent) and line.strip()]
    assert commands and commands[0] == f"cd {ot}", dry.stdout
    assert any("-r requirements-global.txt" in c for c in commands), dry.stdout
    _run_pasted(commands, {**base_env, **env})
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "venv", "--skip", "venv.torch", env=env)
    assert res["venv.python-version"]["status"] == "ok", res["venv.python-version"]
    assert res["venv.requirements"]["status"] == "ok", res["venv.requirements"]
    assert not list(ot.glob("venv.otdoctor-old-*"))
