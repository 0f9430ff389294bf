"""`otdoctor install` in a shell where `pyenv shell` set PYENV_VERSION (issue 13): the install pins
and builds with the checkout's Python regardless, and says that PYENV_VERSION overrides it here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.factory import pyenv_version
from tests.support.installkit import pip_env, upstream, wheelhouse

PY310 = pyenv_version("3.10")
OTHER = pyenv_version("3.12")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return wheelhouse(tmp_path_factory.mktemp("wheels"))


@pytest.mark.slow
def test_install_works_with_pyenv_version_set_and_names_it(run_cli, tmp_path, wheels):
    repo = upstream(tmp_path / "upstream")
    target = tmp_path / "home" / "Projects" / "OneTrainer"
    res = run_cli(
        "install",
        *("--dir", str(target), "--repo-url", str(repo), "--yes"),
        env={**pip_env(wheels), "PYENV_VERSION": OTHER},
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode in (0, 1), out
    assert "does not select" not in out and "OneTrainer is installed" in out, out
    assert (target / ".python-version").read_text().strip() == PY310
    assert f"versions/{PY310}/bin" in (target / "venv" / "pyvenv.cfg").read_text()
    # Named twice: before the install starts, and by python.version in the check that follows it.
    assert f"PYENV_VERSION={OTHER} is set in this shell" in out
    assert f"overrides {target / '.python-version'}, which asks for {PY310}" in out, out


@pytest.mark.slow
def test_install_prefers_the_python_the_launcher_recommends(run_cli, tmp_path, wheels):
    """A checkout whose version check warns below 3.11.0 gets an installed 3.11.x, not the guide's 3.10;
    a re-run keeps what is pinned."""
    from tests.support.factory import git

    repo = upstream(tmp_path / "upstream")
    (repo / "scripts" / "util" / "version_check.py").write_text("deprecated_ver = (3, 11, 0)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "version check")
    target = tmp_path / "home" / "Projects" / "OneTrainer"
    argv = ("install", "--dir", str(target), "--repo-url", str(repo), "--yes")
    res = run_cli(*argv, env=pip_env(wheels), timeout=300)
    assert res.returncode in (0, 1) and "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    py311 = pyenv_version("3.11")
    assert (target / ".python-version").read_text().strip() == py311
    assert f"versions/{py311}/bin" in (target / "venv" / "pyvenv.cfg").read_text()
    again = run_cli(*argv, env=pip_env(wheels), timeout=300)
    assert "reusing" in again.stdout and (target / ".python-version").read_text().strip() == py311
