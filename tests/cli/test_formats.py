"""`--format` everywhere data is printed: `models list|verify` take `--format text|json`, and their
older `--json` stays a hidden alias that prints exactly the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.modelfiles import write_checkpoint


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    write_checkpoint(d / "sdxl" / "mine.safetensors", "sdxl", pad_bytes=2000, seed=1)
    write_checkpoint(d / "lora.safetensors", "lora", seed=2)
    return d


@pytest.mark.parametrize("command", [("models", "list"), ("models", "verify")])
def test_format_json_prints_what_json_printed(run_cli, models_dir, command):
    args = (*command, "--models-dir", str(models_dir))
    alias = run_cli(*args, "--json")
    for spelling in (("--format", "json"), ("-f", "JSON")):
        proc = run_cli(*args, *spelling)
        assert (proc.returncode, proc.stdout, proc.stderr) == (alias.returncode, alias.stdout, alias.stderr)
    assert alias.returncode == 0, alias.stderr
    json.loads(alias.stdout)


@pytest.mark.parametrize("command", [("models", "list"), ("models", "verify")])
def test_format_text_is_the_default(run_cli, models_dir, command):
    args = (*command, "--models-dir", str(models_dir))
    default, text = run_cli(*args), run_cli(*args, "--format", "text")
    assert (default.returncode, default.stdout) == (text.returncode, text.stdout)
    assert "mine.safetensors" in text.stdout and not text.stdout.lstrip().startswith(("{", "["))


def test_verify_named_file_json_alias(run_cli, models_dir):
    f = models_dir / "lora.safetensors"
    alias, fmt = run_cli("models", "verify", str(f), "--json"), run_cli("models", "verify", str(f), "-f", "json")
    assert alias.stdout == fmt.stdout and json.loads(fmt.stdout)[0]["architecture"] == "LoRA"


@pytest.mark.parametrize("command", [("models", "list"), ("models", "verify")])
def test_unknown_format_is_a_usage_error(run_cli, command):
    proc = run_cli(*command, "--format", "yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "otdoctor: error: unknown --format 'yaml'; choose text or json"


@pytest.mark.parametrize("command", [("models", "list"), ("models", "verify")])
def test_help_names_format_and_hides_json(run_cli, command):
    out = run_cli(*command, "--help").stdout
    assert "-f, --format" in out and "Output format: text or json." in out
    assert "--json" not in out


def test_python_dash_m_runs_the_cli(base_env):
    proc = subprocess.run(
        [sys.executable, "-m", "otdoctor.cli", "--version"], env=base_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.startswith("otdoctor ")
