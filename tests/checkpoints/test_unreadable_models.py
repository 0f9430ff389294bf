"""Model folders this user may not read (issue 12): `check` and `models list` run as nobody say
"cannot read X (permission denied)" for a closed ~/.cache, a closed Hugging Face cache and a closed
models/ folder of the checkout, instead of reporting the models as simply not there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.modelfiles import write_checkpoint
from tests.support.nobody import folder, nobody_home, run_as_nobody, scratch_world, why_not

pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    with scratch_world("otdoctor-models-nobody-") as top:
        yield top


def _checkpoints(world: Path, home: Path, *args: str) -> dict:
    res = run_as_nobody(world, home, ["check", "--only", "models", "--format", "json", *args], {})
    text = res.stdout + res.stderr
    assert res.returncode in (0, 1), text[-3000:]
    assert "internal error" not in text and "Traceback" not in text, text[-3000:]
    return next(c for c in json.loads(res.stdout)["checks"] if c["id"] == "models.checkpoints")


def test_closed_cache_folder_innobody_home(world: Path) -> None:
    home = nobody_home(world, "home-cache")
    folder(home / ".cache" / "huggingface" / "hub")
    (home / ".cache").chmod(0o700)  # root's, as after a `sudo` run that created it
    found = _checkpoints(world, home)
    assert found["status"] == "warn"
    line = f"cannot read {home / '.cache'} (permission denied)"
    assert line in found["summary"] and line in found["details"]
    listed = run_as_nobody(world, home, ["models", "list"], {})
    assert listed.returncode == 0, listed.stderr
    assert line in listed.stdout and "Traceback" not in listed.stderr


def test_closed_hub_cache_and_closed_models_folder_in_the_checkout(world: Path) -> None:
    home = nobody_home(world, "home-hub")
    folder(home / ".cache" / "huggingface" / "hub", 0o700)
    checkout = folder(world / "OneTrainer-hub")
    for name in ("scripts/train.py", "install.sh", "requirements-global.txt"):
        folder((checkout / name).parent)
        (checkout / name).write_text("")
        (checkout / name).chmod(0o644)
    models = folder(checkout / "models")
    write_checkpoint(models / "hyperRealism_30.safetensors", "sd15", pad_bytes=1000).chmod(0o644)
    models.chmod(0o700)
    found = _checkpoints(world, home, "--ot-dir", str(checkout))
    hub, closed = home / ".cache" / "huggingface" / "hub", checkout / "models"
    for path in (hub, closed):
        assert f"cannot read {path} (permission denied)" in found["details"], found
    assert found["data"]["unreadable"] == [
        f"cannot read {closed} (permission denied)",
        f"cannot read {hub} (permission denied)",
    ]
    listed = run_as_nobody(world, home, ["models", "list", "--ot-dir", str(checkout), "--format", "json"], {})
    assert listed.returncode == 0, listed.stderr
    assert f"cannot read {closed} (permission denied)" in json.loads(listed.stdout)["unreadable"]


def test_a_closed_subfolder_of_a_models_dir(world: Path) -> None:
    home = nobody_home(world, "home-sub")
    models = folder(world / "shared-models")
    folder(models / "private", 0o700)
    found = _checkpoints(world, home, "--models-dir", str(models))
    assert f"cannot read {models / 'private'} (permission denied)" in found["summary"]
