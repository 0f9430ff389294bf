from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.factory import PYENV_ROOT, otdoctor_exe

# Property tests (marker "property"): 500 examples per surface with a fixed seed by default, so CI is
# repeatable; HYPOTHESIS_PROFILE=deep explores 10x more with random seeds (docs/testing.md).
_PROFILE = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("default", max_examples=500, derandomize=True, print_blob=True, **_PROFILE)
settings.register_profile("deep", max_examples=5000, derandomize=False, **_PROFILE)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home folder, so the user's real ~/Projects/OneTrainer or caches never leak in."""
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def base_env(home: Path, tmp_path: Path) -> dict[str, str]:
    """The environment a user's shell would give: real PATH and pyenv, an isolated home and cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_", "PYENV_VERSION", "GITHUB_"))}
    env.update(
        HOME=str(home),
        PYENV_ROOT=str(PYENV_ROOT),
        OTDOCTOR_CACHE_DIR=str(tmp_path / "otdoctor-cache"),
        OTDOCTOR_CONFIG_DIR=str(tmp_path / "otdoctor-config"),
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


@pytest.fixture
def run_cli(base_env: dict[str, str], tmp_path: Path):
    """Run the real `otdoctor` console script; returns CompletedProcess with text output."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 120,
    ):
        return subprocess.run(
            [otdoctor_exe(), *args],
            env={**base_env, **(env or {})},
            cwd=str(cwd or tmp_path),
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def torch_venv(tmp_path_factory) -> Path:
    """One real venv per test session with CPU torch (the wheel on this machine's disk) and diffusers.

    Python 3.11, because the torch 2.13.0 file on disk is cp311. Slow to build (about a minute), so
    it is shared by every test that needs real torch: the venv probe, the smoke training, the GPU
    build checks.
    """
    from tests.support.factory import make_venv, pyenv_python

    venv = tmp_path_factory.mktemp("torch-venv") / "venv"
    make_venv(venv, pyenv_python("3.11"))
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "torch==2.13.0",
            "diffusers",
            "tqdm",
        ],
        check=True,
        capture_output=True,
    )
    return venv
