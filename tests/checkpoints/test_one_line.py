"""Names and paths from files stay on one line (issue 12): a component name with a newline in
model_index.json, a model file or folder whose name holds control characters. Shown escaped in
`check`, `models list` and `models verify`; the fix commands quote such a path so that, pasted into
bash, they act on the very file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from otdoctor.oneline import one_line, shell_quote
from tests.support.modelfiles import write_checkpoint, write_diffusers

ODD_NAMES = [
    "plain name.safetensors",
    "line\nbreak",
    "tab\there",
    "esc\x1b[31mred",
    "bell\x07",
    "rtl\u202eoverride",
    "quote ' and \\ backslash\n",
    "undecodable \udcff byte",
    "ünïcode ✓ stays",
    "del\x7f",
]
INJECTED = "✓ RealVisXL V4.0: all good"


@pytest.mark.parametrize("name", ODD_NAMES)
def test_one_line_has_no_control_characters_and_keeps_printable_text(name: str) -> None:
    shown = one_line(name)
    assert shown.isprintable()
    if name.isprintable():
        assert shown == name


@pytest.mark.parametrize("name", ODD_NAMES)
def test_shell_quote_pasted_into_bash_names_the_same_file(tmp_path: Path, name: str) -> None:
    word = shell_quote(name)
    assert word.isprintable()  # the command prints on one line
    subprocess.run(["bash", "-c", f"touch -- {word}"], cwd=tmp_path, check=True)
    assert os.listdir(tmp_path) == [name]


def _lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_component_name_with_a_newline_stays_on_its_line(run_cli, tmp_path: Path) -> None:
    models = tmp_path / "models"
    pipe = write_diffusers(models / "pipe", "sd15")
    index = json.loads((pipe / "model_index.json").read_text())
    index[f"unet\n{INJECTED}"] = ["diffusers", "UNet2DConditionModel"]
    (pipe / "model_index.json").write_text(json.dumps(index))
    for args in (
        ["models", "verify", str(pipe)],
        ["models", "list", "--models-dir", str(models)],
        ["check", "--only", "models", "--models-dir", str(models), "--verbose"],
    ):
        proc = run_cli(*args)
        out = proc.stdout + proc.stderr
        assert proc.returncode in (0, 1), out
        if args[1] == "verify":  # list and check show a folder outside the catalog by its state alone
            assert "unet\\n" + INJECTED in out, out
        for line in _lines_with(out, INJECTED):  # never a line of its own
            assert "unet\\n" + INJECTED in line, out


def test_file_in_a_folder_with_a_newline_is_listed_and_fixed_on_one_line(run_cli, tmp_path: Path) -> None:
    models = tmp_path / "my\nmodels"
    bad = write_checkpoint(models / "hyperRealism_30.safetensors", "sd15", pad_bytes=1000)
    bad.write_bytes(bad.read_bytes()[:-500])  # truncated: a damaged copy of a catalog model
    write_checkpoint(models / "evil\x1b[2Jname.safetensors", "sd15")
    listed = run_cli("models", "list", "--models-dir", str(models))
    assert "my\\nmodels/evil\\x1b[2Jname.safetensors" in listed.stdout, listed.stdout
    assert "\x1b" not in listed.stdout
    proc = run_cli("check", "--only", "models", "--models-dir", str(models), "--format", "json")
    check = next(c for c in json.loads(proc.stdout)["checks"] if c["id"] == "models.checkpoints")
    assert check["status"] == "fail"
    assert all("\n" not in d for d in check["details"]) and "\n" not in check["summary"]
    commands = check["fix"]["commands"]
    mv = next(c for c in commands if c.startswith("mv "))
    assert mv.isprintable() and "$'" in mv
    subprocess.run(["bash", "-c", mv], check=True)  # pasted as printed
    assert (models / "hyperRealism_30.safetensors.bad").is_file() and not bad.exists()
    text = run_cli("check", "--only", "models", "--models-dir", str(models), "--verbose").stdout
    assert not _lines_with(text, "models/") or all("my\\nmodels" in line for line in _lines_with(text, "models/"))
