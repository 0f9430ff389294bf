"""`otdoctor report` run by a user who cannot read some places still writes its bundle (issue 12).

Root makes the places (another user's pyenv, an install log written with sudo, a closed cache
folder); otdoctor runs as nobody through `setpriv`, with a copy of this interpreter nobody can run
(the pyenv under /root is closed to others) and the repository's .venv for its libraries. Each
place it cannot read is named in the bundle with "cannot read X (permission denied)"; every other
section is there.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nobody import NOBODY, run_as_nobody, scratch_world, why_not

pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    with scratch_world("otdoctor-report-closed-") as top:
        yield top


def _closed_places(world: Path) -> dict[str, Path]:
    """Another user's pyenv, a checkout whose install log root wrote, a home with a closed cache."""
    pyenv = world / "their-pyenv"
    (pyenv / "versions" / "3.10.13" / "bin").mkdir(parents=True)
    pyenv.chmod(0o700)
    ot = world / "OneTrainer"
    (ot / "scripts").mkdir(parents=True)
    for name in ("scripts/train.py", "install.sh", "requirements-global.txt"):
        (ot / name).write_text("")
    for folder in (ot, ot / "scripts"):
        folder.chmod(0o755)
    log = ot / "otdoctor-install.log"
    log.write_text("[install] written by sudo\n")
    log.chmod(0o600)
    home = world / "zelda"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache").chmod(0o700)  # still root's: nobody cannot enter it
    os.chown(home, NOBODY, NOBODY)
    return {"pyenv": pyenv, "ot": ot, "log": log, "home": home}


def test_the_bundle_is_written_and_names_each_place_it_cannot_read(world: Path) -> None:
    places = _closed_places(world)
    out = places["home"] / "report.zip"
    env = {"PYENV_ROOT": str(places["pyenv"]), "OT_DIR": str(places["ot"])}
    res = run_as_nobody(world, places["home"], ["report", "--offline", "--output", str(out)], env)
    text = res.stdout + res.stderr
    assert res.returncode == 0, text[-3000:]
    assert "internal error" not in text and "Traceback" not in text, text[-3000:]
    assert "otdoctor: wrote " in res.stderr

    with zipfile.ZipFile(out) as zf:
        files = {name.split("/", 1)[1]: zf.read(name).decode() for name in zf.namelist()}
    assert {"summary.md", "checks.json", "facts.json", "environment.txt", "pip-freeze.txt", "gpu.json"} <= set(files)
    checks = json.loads(files["checks.json"])["checks"]
    assert checks and not [c["id"] for c in checks if c["status"] == "error"]
    # The install log root wrote: a section of its own, named with its reason in facts and summary.
    facts = json.loads(files["facts.json"])
    assert facts["not_collected"] == {"install log": f"cannot read {places['log']} (permission denied)"}
    assert f"| **not collected** | cannot read {places['log']} (permission denied) |" in files["summary.md"]
    assert "install.log" not in files
    # The pyenv of another user: the checks say so, and the rest of the Python facts are there.
    assert f"cannot read {places['pyenv']} (permission denied)" in files["summary.md"]
    assert facts["otdoctor_python"] and facts["onetrainer"]["path"] == str(places["ot"])
    assert f"PYENV_ROOT={places['pyenv']}" in files["environment.txt"]
