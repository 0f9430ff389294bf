"""Strings from the machine cannot drive the terminal or forge a line (issue 12, QA item 5).

Any local user can start a process whose command line holds a newline and escape sequences; once it
holds VRAM, `gpu` and `check` print that command line. An NVML device name is machine text too. The
text outputs must show such characters escaped, each field on its own line, so that no fake
"✓ All good" line appears and neither the colours nor the window title change.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otdoctor.render.emit import Destination
from otdoctor.render.text import console
from tests.support.factory import otdoctor_exe
from tests.support.nvml_snapshots import load, put_processes, write

INJECTED = "\n  ✓ All good (fake.check): injected\x1b[31mRED\x1b]0;pwned\x07"
DEVICE_NAME = "NVIDIA GeForce RTX 4090\n✗ fake line\x1b[2J"


def _raw_controls(text: str) -> list[str]:
    """Characters a terminal would act on: every non-printable one but the line breaks."""
    return sorted({repr(ch) for ch in text if not ch.isprintable() and ch != "\n"})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    argv = [sys.executable, "-c", "import time; time.sleep(300)", "train.py", INJECTED, "\u202eexe.txt"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    snap = load("rtx4090-desktop")
    snap["devices"][0]["nvmlDeviceGetName"]["value"] = DEVICE_NAME
    put_processes(snap, "compute", [(proc.pid, "keep")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_"))}
    env.update(
        HOME=str(base),
        COLUMNS="300",
        OTDOCTOR_NVML_SNAPSHOT=str(write(base, snap)),
        OTDOCTOR_CACHE_DIR=str(base / "cache"),
        OTDOCTOR_CONFIG_DIR=str(base / "config"),
    )
    yield {"pid": proc.pid, "env": env, "base": base}
    proc.kill()
    proc.wait(timeout=10)


def _run(hostile, *args: str) -> str:
    done = subprocess.run(
        [otdoctor_exe(), *args],
        env=hostile["env"],
        cwd=hostile["base"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr[-2000:]
    return done.stdout + done.stderr


@pytest.mark.parametrize("args", [("gpu",), ("check", "--only", "gpu")], ids=["gpu", "check"])
def test_a_hostile_command_line_and_device_name_print_escaped_on_their_own_line(hostile, args):
    out = _run(hostile, *args)
    assert _raw_controls(out) == []
    lines = out.splitlines()
    # the planted lines are not lines of their own
    assert not [line for line in lines if line.lstrip().startswith(("✓ All good (fake.check)", "✗ fake line"))]
    if args == ("gpu",):
        (holder,) = [line for line in lines if str(hostile["pid"]) in line]
        assert "train.py \\n  ✓ All good (fake.check): injected\\x1b[31mRED\\x1b]0;pwned\\x07 \\u202eexe.txt" in holder
        (device,) = [line for line in lines if "RTX 4090" in line]
        assert "NVIDIA GeForce RTX 4090\\n✗ fake line\\x1b[2J" in device
    else:
        assert "injected\\x1b[31mRED" in out and "RTX 4090\\n✗ fake line\\x1b[2J" in out


def test_explain_shows_an_escape_sequence_in_a_log_escaped(hostile, tmp_path):
    log = tmp_path / "train.log"
    log.write_text("torch.OutOfMemoryError: CUDA out of memory.\x1b]0;pwned\x07 Tried to allocate 20.00 MiB\n")
    out = _run(hostile, "explain", str(log))
    assert "out of memory" in out
    assert _raw_controls(out) == []


def test_every_text_drawn_with_rich_is_escaped_and_keeps_its_colours():
    buf = io.StringIO()
    out = console(file=buf, force_color=True)
    out.print("[red]model[/] \x1b]0;pwned\x07 \u202eevil\r")
    text = buf.getvalue()
    assert "\x1b[31m" in text  # rich's own colour still works
    assert "\\u001b]0;pwned \\u202eevil" in text  # rich drops the BEL and the CR itself
    assert _raw_controls(text.replace("\x1b[31m", "").replace("\x1b[0m", "")) == []


def test_whole_strings_written_are_escaped_and_json_stays_the_same_document(tmp_path: Path):
    doc = {"name": "a\u202eb\x1b[2Jc", "nested": ["x\u2066y"]}
    target = tmp_path / "out.json"
    Destination(target).write(json.dumps(doc, ensure_ascii=False, indent=2))
    written = target.read_text(encoding="utf-8")
    assert _raw_controls(written) == []
    assert json.loads(written) == doc
    Destination(tmp_path / "out.txt").write("line one\x1b]0;pwned\x07\nline two\n")
    assert (tmp_path / "out.txt").read_text() == "line one\\u001b]0;pwned\\u0007\nline two\n"
