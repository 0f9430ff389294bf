"""The install's view of OneTrainer's requirement files: the hash its state file keeps, and the lines
a venv does not satisfy, read by the one requirements parser (otdoctor.onetrainer.requirements)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from otdoctor.install.pip import requirement_files, requirements_hash, unmet_requirements


def _checkout(root: Path) -> Path:
    root.mkdir()
    (root / "requirements-global.txt").write_text(
        "# base\n"
        "numpy==2.2.6  # pinned by OneTrainer\n"
        "-r requirements-extra.txt\n"
        "-r requirements-gone.txt\n"
        "-e git+https://github.com/huggingface/diffusers.git@abc1234#egg=diffusers\n"
        "pywin32==308; sys_platform == 'win32'\n"
        "--extra-index-url https://download.pytorch.org/whl/cu130\n"
    )
    (root / "requirements-extra.txt").write_text("scipy>=1.10\n")
    (root / "requirements-cuda.txt").write_text("torch==2.8.0+cu130\n")
    return root


def test_the_hash_covers_the_platform_file_and_every_included_file_in_order(tmp_path):
    ot = _checkout(tmp_path / "OT")
    expected = hashlib.sha256(b"requirements-cuda.txt")
    for name in ("requirements-global.txt", "requirements-extra.txt", "requirements-gone.txt", "requirements-cuda.txt"):
        path = ot / name
        expected.update(path.read_bytes() if path.exists() else b"<missing>")
    assert requirements_hash(ot, "requirements-cuda.txt") == expected.hexdigest()
    (ot / "requirements-extra.txt").write_text("scipy>=1.11\n")
    assert requirements_hash(ot, "requirements-cuda.txt") != expected.hexdigest()


def test_unmet_lines_are_shown_as_written(tmp_path):
    ot = _checkout(tmp_path / "OT")
    files = requirement_files(ot, "requirements-cuda.txt")
    dists = {"numpy": "2.2.5", "scipy": "1.12.0", "torch": "2.8.0+cu130"}
    assert unmet_requirements(files, dists) == [
        "numpy==2.2.6  # pinned by OneTrainer (installed 2.2.5)",
        "-e git+https://github.com/huggingface/diffusers.git@abc1234#egg=diffusers (not installed)",
    ]
    dists.update(numpy="2.2.6", diffusers="0.36.0.dev0")
    assert unmet_requirements(files, dists) == []
