"""Every `scripts/train.py` line otdoctor prints runs when pasted, from any folder.

The user runs otdoctor from their own folder with a relative `--config`; the printed line is then
pasted into bash from yet another folder. A stand-in checkout (a folder with a space and a quote in
its name) has the real launcher marker, a venv whose `python` is a real interpreter, and a
`scripts/train.py` that parses OneTrainer's arguments, opens the config it is given and records
its argv, the folder it runs in and what it read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.factory import otdoctor_exe

from .test_model import guide

RECORDER = """\
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--config-path", required=True)
parser.add_argument("--config-value", action="append", dest="values")
args = parser.parse_args()
with open(args.config_path, encoding="utf-8") as fh:
    config = json.load(fh)
record = {"cwd": os.getcwd(), "python": sys.executable, "config": args.config_path,
          "model_type": config["model_type"], "values": args.values, "modules": os.path.isdir("modules")}
with open(os.environ["TRAIN_RECORD"], "w", encoding="utf-8") as fh:
    json.dump(record, fh)
"""


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    checkout = tmp_path / "One Trainer's copy"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "modules").mkdir()
    (checkout / "scripts" / "train.py").write_text(RECORDER)
    (checkout / "start-ui.sh").write_text("#!/usr/bin/env bash\n")
    (checkout / "venv" / "bin").mkdir(parents=True)
    (checkout / "venv" / "bin" / "python").symlink_to(sys.executable)
    user = tmp_path / "user"
    (user / "c").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return {"checkout": checkout, "user": user, "elsewhere": elsewhere, "home": tmp_path / "home"}


def otdoctor(world: dict[str, Path], *argv: str) -> subprocess.CompletedProcess[str]:
    """`otdoctor ARGV` from the user's folder, with a HOME of its own (no OneTrainer there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_"))}
    env["HOME"] = str(world["home"])
    cmd = [otdoctor_exe(), *argv]
    return subprocess.run(cmd, cwd=world["user"], env=env, capture_output=True, text=True, timeout=60)


def paste(world: dict[str, Path], line: str, tmp_path: Path) -> dict[str, object] | None:
    """LINE pasted into bash in another folder; what the stand-in train.py recorded, if it ran."""
    record = tmp_path / "record.json"
    env = {"PATH": "/usr/bin:/bin", "TRAIN_RECORD": str(record), "HOME": str(world["home"])}
    done = subprocess.run(["bash", "-ec", line], cwd=world["elsewhere"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(record.read_text()) if record.exists() else None


def train_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "scripts/train.py" in line]


def test_vram_advice_runs_as_printed(world, tmp_path):
    (world["user"] / "c" / "m.json").write_text(json.dumps(guide(optimizer__fused_back_pass=False, ema="GPU")))
    argv = ("vram", "--config", "c/m.json", "--free-gb", "10", "--ot-dir", str(world["checkout"]))
    run = otdoctor(world, *argv)
    assert run.returncode == 1, run.stderr
    assert "In OneTrainer's folder" not in run.stdout and "(from any folder)" in run.stdout
    (line,) = train_lines(run.stdout)
    got = paste(world, line, tmp_path)
    assert got is not None
    assert got["cwd"] == str(world["checkout"]) and got["modules"] is True
    assert got["python"] == str(world["checkout"] / "venv" / "bin" / "python")
    assert got["config"] == str(world["user"] / "c" / "m.json")
    assert got["values"] == ["ema=CPU", "optimizer.fused_back_pass=true"]


def test_config_check_fix_runs_as_printed(world, tmp_path):
    (world["user"] / "c" / "#.json").write_text(json.dumps(guide(output_dtype="FLOAT_32")))
    argv = ("check", "--config", "c/#.json", "--ot-dir", str(world["checkout"]), "--only", "config.output-dtype")
    text = otdoctor(world, *argv).stdout
    data = json.loads(otdoctor(world, *argv, "--format", "json").stdout)
    (fix,) = [c["fix"] for c in data["checks"] if c["id"] == "config.output-dtype"]
    (line,) = fix["commands"]
    assert train_lines(text) == [line]
    got = paste(world, line, tmp_path)
    assert got is not None
    assert got["cwd"] == str(world["checkout"]) and got["config"] == str(world["user"] / "c" / "#.json")
    assert got["values"] == ["output_dtype=BFLOAT_16"] and got["model_type"] == "STABLE_DIFFUSION_XL_10_BASE"


def test_without_a_checkout_the_line_is_a_form_that_cannot_run(world, tmp_path):
    (world["user"] / "c" / "m.json").write_text(json.dumps(guide(optimizer__fused_back_pass=False, ema="GPU")))
    run = otdoctor(world, "vram", "--config", "c/m.json", "--free-gb", "10")
    (line,) = train_lines(run.stdout)
    assert line.startswith("# OneTrainer's folder is not known here (pass --ot-dir)")
    assert "<OneTrainer folder>/venv/bin/python" in line and str(world["user"] / "c" / "m.json") in line
    assert paste(world, line, tmp_path) is None
