"""python.pyenv, python.version, python.stdlib: real pyenv interpreters, real checkouts, real CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from otdoctor.onetrainer.python_range import judge, parse_version, version_matches
from tests.support.factory import make_onetrainer, pyenv_python, pyenv_version
from tests.support.pythons import bin_dir_with, check_json, copy_pyenv_version, pyenv_root

PY310 = pyenv_version("3.10")  # "3.10.13" on this machine


def no_pyenv_path(base_env: dict[str, str]) -> str:
    """The user's PATH with every pyenv folder taken out."""
    return ":".join(p for p in base_env["PATH"].split(":") if ".pyenv" not in p)


# What a user sees through the CLI --------------------------------------------------------------
def test_guide_setup_310_is_accepted_with_deprecation_as_information(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.10")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python")
    assert proc.returncode == 0, proc.stdout
    version = res["python.version"]
    assert version["status"] == "ok"
    assert f"Python {PY310}" in version["summary"] and str(ot / ".python-version") in version["summary"]
    assert any("deprecates Python below 3.11" in d for d in version["details"])
    assert version["data"]["deprecated"] is True and version["data"]["accepted"] is True
    assert version["data"]["range"]["source"] == str(ot / "lib.include.sh")
    assert res["python.pyenv"]["status"] == "ok"
    assert res["python.stdlib"]["status"] == "ok"
    assert "tkinter" in res["python.stdlib"]["summary"]


def test_text_output_shows_the_chosen_python(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.10")
    proc = run_cli("check", "--ot-dir", str(ot), "--only", "python")
    assert proc.returncode == 0
    assert f"✓ Python for OneTrainer (python.version): Python {PY310}" in proc.stdout


def test_3_11_0_requested_and_not_installed_is_still_called_rejected(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.11.0")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python")
    assert proc.returncode == 1
    version = res["python.version"]
    assert version["status"] == "fail"
    assert "3.11.0" in version["summary"] and "not installed" in version["summary"]
    assert "rejected" in version["summary"]
    assert version["fix"]["commands"] == [f"cd {ot}", "pyenv install 3.10", "pyenv local 3.10"]
    assert "not 3.11.0" in version["expected"]
    assert res["python.stdlib"]["status"] == "skip"


def test_requested_version_not_installed_says_pyenv_install(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.12.99")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version")
    assert proc.returncode == 1
    version = res["python.version"]
    assert version["status"] == "fail"
    assert "3.12.99" in version["summary"] and "not installed" in version["summary"]
    assert version["fix"]["commands"] == [f"cd {ot}", "pyenv install 3.12.99"]


def test_range_comes_from_the_checkouts_lib_include(run_cli, tmp_path):
    # An older checkout that stopped at 3.13: the real 3.13.0 is too new for it.
    ot = make_onetrainer(tmp_path / "OneTrainer", too_high="3.13", python_version="3.13")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version")
    assert proc.returncode == 1
    version = res["python.version"]
    assert version["status"] == "fail"
    assert "too new" in version["summary"] and "< 3.13" in version["summary"]
    assert "<3.13" in version["expected"] and str(ot / "lib.include.sh") in version["expected"]
    assert "pyenv local 3.10" in version["fix"]["commands"]


def test_too_old_python_fails(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.9")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version")
    assert proc.returncode == 1
    assert res["python.version"]["status"] == "fail"
    assert "too old" in res["python.version"]["summary"]


def test_fallback_range_when_lib_include_does_not_say(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer", too_high="3.13", python_version="3.13")
    (ot / "lib.include.sh").write_text("#!/usr/bin/env bash\n# no version variables here\n")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version")
    assert proc.returncode == 0
    version = res["python.version"]
    assert version["status"] == "ok"  # 3.13 is inside the built-in >=3.10,<3.14
    assert version["data"]["range"] == {"minimum": "3.10", "too_high": "3.14", "source": "otdoctor's built-in default"}


def test_missing_python_version_file_warns_and_suggests_pyenv_local(run_cli, tmp_path):
    root = pyenv_root(tmp_path / "pyenv", ["3.10", "3.11"], global_version=pyenv_version("3.11"))
    ot = make_onetrainer(tmp_path / "OneTrainer")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python", env={"PYENV_ROOT": str(root)})
    assert proc.returncode == 0  # a warning, not a failure
    version = res["python.version"]
    assert version["status"] == "warn"
    assert f"Python {pyenv_version('3.11')}" in version["summary"] and "pyenv global" in version["summary"]
    assert "no .python-version" in version["summary"]
    assert version["fix"]["commands"] == [f"cd {ot}", "pyenv local 3.10"]
    assert res["python.stdlib"]["status"] == "ok"  # a warning does not stop the stdlib check


def test_the_pin_fix_runs_as_printed_in_a_checkout_whose_path_has_a_space(run_cli, tmp_path, base_env):
    root = pyenv_root(tmp_path / "pyenv", ["3.10", "3.11"], global_version=pyenv_version("3.11"))
    ot = make_onetrainer(tmp_path / "My Projects" / "OneTrainer")
    env = {"PYENV_ROOT": str(root)}
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version", env=env)
    commands = res["python.version"]["fix"]["commands"]
    assert commands == [f"cd '{ot}'", "pyenv local 3.10"]
    pasted = subprocess.run(["bash", "-e", "-c", "\n".join(commands)], env={**base_env, **env}, cwd=tmp_path)
    assert pasted.returncode == 0 and (ot / ".python-version").read_text().strip() == "3.10"
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version", env=env)
    assert res["python.version"]["status"] == "ok"


def test_pyenv_version_variable_wins_over_the_file_and_is_named(run_cli, tmp_path):
    """`pyenv shell 3.12` in this shell: the launcher gets 3.12 here, 3.10 from a new terminal."""
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.10")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version", env={"PYENV_VERSION": "3.12"})
    assert proc.returncode == 0
    version = res["python.version"]
    assert version["status"] == "warn"
    assert version["summary"].startswith(f"Python {pyenv_version('3.12')} (PYENV_VERSION")
    assert version["summary"].endswith(
        f"PYENV_VERSION=3.12 is set in this shell (`pyenv shell` sets it) and overrides {ot / '.python-version'}, "
        "which asks for 3.10"
    )
    assert version["fix"]["commands"] == ["unset PYENV_VERSION"]
    # The same version in both places is no news.
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version", env={"PYENV_VERSION": PY310})
    assert res["python.version"]["status"] == "ok"


VERSION_CHECK = """import sys
deprecated_ver = (3, 12, 0)
if sys.version_info < deprecated_ver:
    shown = ".".join(map(str, deprecated_ver))
    sys.stderr.write("Warning: Deprecated Python version found. Update to %s or newer\\n" % shown)
"""


def test_the_launchers_recommended_version_is_read_from_the_checkout(run_cli, tmp_path):
    """OneTrainer's version check warns below its `deprecated_ver`: python.version says so on its ✓
    line, with the version the checkout itself names (3.12.0 here, not otdoctor's table)."""
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.11")
    (ot / "scripts" / "util" / "version_check.py").write_text(VERSION_CHECK)
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version")
    version = res["python.version"]
    assert version["status"] == "ok"
    assert version["summary"].endswith("; OneTrainer's launcher recommends 3.12.0 or newer")
    source = str(ot / "scripts" / "util" / "version_check.py")
    assert version["data"]["recommended"] == {"version": "3.12.0", "source": source}
    assert any("Update to 3.12.0 or newer" in d and source in d for d in version["details"])
    (ot / ".python-version").write_text("3.12\n")
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version")
    assert "recommends" not in res["python.version"]["summary"]


def test_the_pin_fix_prefers_the_recommended_version(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer")
    (ot / "scripts" / "util" / "version_check.py").write_text(VERSION_CHECK)
    res = run_cli("fix", "python.version", "--ot-dir", str(ot), "--yes")
    assert (ot / ".python-version").read_text().strip() == pyenv_version("3.12"), res.stdout + res.stderr


def test_without_pyenv_the_python_on_path_is_judged_and_pyenv_is_a_warning(run_cli, tmp_path, base_env):
    bin_dir = bin_dir_with(tmp_path / "bin", python=pyenv_python("3.10"))
    env = {"PATH": f"{bin_dir}:{no_pyenv_path(base_env)}", "PYENV_ROOT": ""}
    ot = make_onetrainer(tmp_path / "OneTrainer")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python", env=env)
    assert proc.returncode == 0
    pyenv = res["python.pyenv"]
    assert pyenv["status"] == "warn" and "pyenv not found" in pyenv["summary"]
    assert "curl -fsSL https://pyenv.run | bash" in pyenv["fix"]["commands"]
    assert any(c.startswith("sudo apt install build-essential libssl-dev") for c in pyenv["fix"]["commands"])
    version = res["python.version"]
    assert version["status"] == "ok"  # no pyenv, so no .python-version nagging
    assert f"Python {PY310}" in version["summary"] and "`python` on PATH" in version["summary"]


def test_pyenv_installed_but_not_initialised(run_cli, tmp_path, base_env):
    bin_dir = bin_dir_with(tmp_path / "bin", python=pyenv_python("3.12"))
    env = {"PATH": f"{bin_dir}:{no_pyenv_path(base_env)}"}  # PYENV_ROOT stays: pyenv is installed
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.10")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python", env=env)
    pyenv = res["python.pyenv"]
    assert pyenv["status"] == "warn"
    assert "not initialised" in pyenv["summary"] and str(bin_dir / "python") in pyenv["summary"]
    assert """echo 'eval "$(pyenv init - bash)"' >> ~/.bashrc""" in pyenv["fix"]["commands"]
    # .python-version is ignored without the shims: the launcher would really get 3.12.
    assert f"Python {pyenv_version('3.12')}" in res["python.version"]["summary"]
    assert "the checkout's .python-version is ignored: `python` is not a pyenv shim" in res["python.version"]["details"]
    assert proc.returncode == 0


def test_no_python_at_all(run_cli, tmp_path, base_env):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {"PATH": f"{empty}:/usr/bin:/bin", "PYENV_ROOT": ""}
    # /usr/bin may have python3 but not `python`, which is what the launcher runs.
    if any((Path(d) / "python").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("this machine has a system `python`")
    ot = make_onetrainer(tmp_path / "OneTrainer")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version", env=env)
    assert proc.returncode == 1
    assert res["python.version"]["status"] == "fail"
    assert "`python` is not on PATH" in res["python.version"]["summary"]
    assert "pyenv install 3.10" in res["python.version"]["fix"]["commands"]


def test_pyenv_with_no_version_anywhere_and_no_system_python(run_cli, tmp_path, base_env):
    if any((Path(d) / "python").exists() for d in base_env["PATH"].split(":") if "shims" not in d):
        pytest.skip("this machine has a `python` outside pyenv")
    root = pyenv_root(tmp_path / "pyenv", ["3.10"])  # no global version file
    ot = make_onetrainer(tmp_path / "OneTrainer")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version", env={"PYENV_ROOT": str(root)})
    assert proc.returncode == 1
    version = res["python.version"]
    assert version["status"] == "fail"
    assert version["summary"].startswith("pyenv would use the system Python")
    assert version["fix"]["commands"] == [f"cd {ot}", "pyenv install 3.10", "pyenv local 3.10"]


def test_ot_python_cmd_is_honoured(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer")
    exe = pyenv_python("3.12")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.version", env={"OT_PYTHON_CMD": str(exe)})
    assert res["python.version"]["status"] == "ok"
    assert f"OT_PYTHON_CMD={exe}" in res["python.version"]["summary"]


# The standard library of a pyenv build made without the -dev packages ----------------------------
@pytest.fixture(scope="module")
def python_without_ssl_and_tk(tmp_path_factory) -> Path:
    return copy_pyenv_version("3.10", tmp_path_factory.mktemp("py") / PY310, drop_modules=["_ssl", "_tkinter"])


def test_missing_stdlib_modules_name_the_build_packages(run_cli, tmp_path, python_without_ssl_and_tk):
    root = pyenv_root(tmp_path / "pyenv", {PY310: python_without_ssl_and_tk})
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.10")
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python", env={"PYENV_ROOT": str(root)})
    assert proc.returncode == 1
    assert res["python.version"]["status"] == "ok"
    stdlib = res["python.stdlib"]
    assert stdlib["status"] == "fail"
    assert "cannot import ssl, tkinter" in stdlib["summary"]
    assert any(d.startswith("ssl: ModuleNotFoundError: No module named '_ssl'") for d in stdlib["details"])
    assert any(d.startswith("tkinter:") and "_tkinter" in d for d in stdlib["details"])
    assert stdlib["fix"]["commands"] == ["sudo apt install libssl-dev tk-dev", f"pyenv install --force {PY310}"]
    assert set(stdlib["data"]["missing"]) == {"ssl", "tkinter"}


def test_missing_readline_only_is_a_warning(run_cli, tmp_path):
    copy = copy_pyenv_version("3.10", tmp_path / "py" / PY310)
    root = pyenv_root(tmp_path / "pyenv", {PY310: copy})
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.10")
    env = {"PYENV_ROOT": str(root)}
    _, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.stdlib", env=env)
    assert res["python.stdlib"]["status"] == "ok"
    # The interpreter's answer is cached, but not past a change to its compiled modules.
    for so in copy.glob("lib/python3*/lib-dynload/readline.*so"):
        so.unlink()
    proc, res, _ = check_json(run_cli, "--ot-dir", str(ot), "--only", "python.stdlib", env=env)
    assert proc.returncode == 0
    stdlib = res["python.stdlib"]
    assert stdlib["status"] == "warn"
    assert stdlib["fix"]["commands"] == [
        "sudo apt install libreadline-dev libncursesw5-dev",
        f"pyenv install --force {PY310}",
    ]


def test_text_output_for_missing_stdlib(run_cli, tmp_path, python_without_ssl_and_tk):
    root = pyenv_root(tmp_path / "pyenv", {PY310: python_without_ssl_and_tk})
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.10")
    proc = run_cli("check", "--ot-dir", str(ot), "--only", "python.stdlib", env={"PYENV_ROOT": str(root)})
    assert proc.returncode == 1
    assert "✗ Python standard library (python.stdlib)" in proc.stdout
    assert "sudo apt install libssl-dev tk-dev" in proc.stdout
    assert f"pyenv install --force {PY310}" in proc.stdout


# The range rule itself --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "version, accepted, deprecated, problem",
    [
        ((3, 10, 13), True, True, None),
        ((3, 10), True, True, None),
        ((3, 11, 0), False, False, "rejected"),
        ((3, 11, 1), True, False, None),
        ((3, 11), True, False, None),  # pyenv's newest 3.11.x, never 3.11.0
        ((3, 13, 9), True, False, None),
        ((3, 14, 0), False, False, "too new"),
        ((3, 9, 18), False, False, "too old"),
    ],
)
def test_range_rule(tmp_path, version, accepted, deprecated, problem):
    ot = make_onetrainer(tmp_path / "OneTrainer", git_init=False)
    verdict = judge(version, ot)
    assert verdict.accepted is accepted
    assert verdict.deprecated is deprecated
    if problem:
        assert problem in verdict.problem
    else:
        assert verdict.problem is None


def test_version_strings():
    assert parse_version("3.10") == (3, 10)
    assert parse_version("3.10.13") == (3, 10, 13)
    assert parse_version("system") is None and parse_version("pypy3.10-7.3.17") is None
    assert version_matches("3.10", (3, 10, 13)) and not version_matches("3.1", (3, 10, 13))
    assert not version_matches("3.11", (3, 10, 13))


def test_mistyped_ot_dir_gets_no_python_advice_about_that_folder(run_cli, tmp_path):
    # onetrainer.checkout reports the missing folder; the Python checks must not say `cd` into it.
    missing = tmp_path / "OneTrainr"
    proc = run_cli("check", "--ot-dir", str(missing), "--format", "json")
    assert proc.returncode == 1
    import json

    report = json.loads(proc.stdout)
    checkout = next(c for c in report["checks"] if c["id"] == "onetrainer.checkout")
    assert checkout["status"] == "fail" and "does not exist" in checkout["summary"]
    python_text = json.dumps([c for c in report["checks"] if c["area"] == "python"])
    assert str(missing) not in python_text
