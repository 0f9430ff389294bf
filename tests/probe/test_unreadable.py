"""Places this user may not read (issue 12): `otdoctor check` run as an unprivileged user.

The folders are made by root with mode 700 (another user's pyenv, checkout, venv, home folders);
otdoctor runs as nobody through `setpriv`, with a copy of this interpreter nobody can run (the
pyenv under /root is closed to others) and the repository's own .venv for its libraries.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nobody import NOBODY, folder, nobody_home, run_as_nobody, scratch_world, why_not

pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    with scratch_world("otdoctor-nobody-") as top:
        yield top


def _checkout(path: Path) -> Path:
    folder(path / "scripts")
    for name in ("scripts/train.py", "install.sh", "requirements-global.txt"):
        (path / name).write_text("")
    for entry in [path, *path.rglob("*")]:
        entry.chmod(0o755 if entry.is_dir() else 0o644)
    return path


def check_as_nobody(world: Path, home: Path, **env: str) -> dict[str, dict]:
    res = run_as_nobody(world, home, ["check", "--format", "json"], env)
    text = res.stdout + res.stderr
    assert res.returncode in (0, 1), text[-3000:]
    assert "internal error" not in text and "Traceback" not in text, text[-3000:]
    checks = {c["id"]: c for c in json.loads(res.stdout)["checks"]}
    assert not [c["id"] for c in checks.values() if c["status"] == "error"], text[-3000:]
    return checks


def paste_as_nobody(command: str, home: Path) -> str:
    """A printed fix line, pasted into nobody's shell."""
    res = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "bash", "-c", command],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_another_users_pyenv_root(world: Path) -> None:
    root = folder(world / "their-pyenv", 0o700)
    folder(root / "versions" / "3.10.13" / "bin")
    checks = check_as_nobody(world, nobody_home(world, "home-pyenv"), PYENV_ROOT=str(root))
    pyenv = checks["python.pyenv"]
    assert pyenv["status"] == "warn"
    assert pyenv["summary"] == f"pyenv at {root}: cannot read {root} (permission denied)"
    assert pyenv["fix"]["commands"][0] == f"ls -ld {root}"
    assert paste_as_nobody(pyenv["fix"]["commands"][0], world).startswith("drwx------")  # shows the owner


def test_a_pyenv_versions_folder_that_cannot_be_listed(world: Path) -> None:
    root = folder(world / "pyenv-711")
    folder(root / "versions" / "3.10.13" / "bin")
    (root / "versions").chmod(0o711)
    checks = check_as_nobody(world, nobody_home(world, "home-711"), PYENV_ROOT=str(root))
    assert checks["python.pyenv"]["summary"] == f"pyenv at {root}: cannot read {root / 'versions'} (permission denied)"


def test_another_users_checkout(world: Path) -> None:
    ot = _checkout(world / "their-OneTrainer")
    ot.chmod(0o700)
    checks = check_as_nobody(world, nobody_home(world, "home-ot"), OT_DIR=str(ot))
    found = checks["onetrainer.checkout"]
    assert found["status"] == "fail"
    assert found["summary"].startswith(f"cannot read {ot} (permission denied)")
    assert paste_as_nobody(found["fix"]["commands"][0], world).startswith("drwx------")


def test_a_venv_and_presets_made_with_sudo(world: Path) -> None:
    ot = _checkout(world / "OneTrainer-sudo")
    folder(ot / "venv" / "bin", 0o755)
    (ot / "venv" / "bin" / "activate").write_text("")
    (ot / "venv").chmod(0o700)
    folder(ot / "training_presets", 0o700)
    checks = check_as_nobody(world, nobody_home(world, "home-venv"), OT_DIR=str(ot))
    venv = checks["venv.exists"]
    assert venv["status"] == "fail"
    assert (
        venv["summary"] == f"cannot read {ot / 'venv'} (permission denied), so the venv at {ot / 'venv'} cannot be used"
    )
    assert paste_as_nobody(venv["fix"]["commands"][0], world).startswith("drwx------")
    assert (
        checks["config.file"]["status"] in ("fail", "warn") and "Permission denied" in checks["config.file"]["summary"]
    )


def test_closed_folders_in_home(world: Path) -> None:
    home = nobody_home(world, "home-closed")
    for name in ("Projects", ".cache", ".config"):
        folder(home / name, 0o700)
    folder(home / ".cache" / "huggingface" / "hub", 0o700)
    checks = check_as_nobody(world, home)
    found = checks["onetrainer.checkout"]
    assert (
        f"looked in {home / 'Projects' / 'OneTrainer'} (cannot read {home / 'Projects'} (permission denied))"
        in (found["details"])
    )
