"""Shell completion for bash, zsh and fish (typer's), and help texts written for each command."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.factory import otdoctor_exe

BIN = str(Path(otdoctor_exe()).parent)


def _bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**env, "PATH": f"{BIN}:{env['PATH']}"}
    return subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script], env=env, capture_output=True, text=True, timeout=120
    )


# What a user types before pressing Tab, and what bash offers.
BASH_CASES = [
    ("otdoctor ch", ["check"]),
    ("otdoctor check --on", ["--only"]),
    ("otdoctor models ve", ["verify"]),
    ("otdoctor sm", ["smoke"]),
]


def test_bash_completion_script_completes_commands_options_and_subcommands(base_env):
    # `--show-completion` detects the shell it runs under: here a real bash, which sources it.
    lines = ["source <(otdoctor --show-completion)"]
    for typed, _ in BASH_CASES:
        words = typed.split()
        lines += [
            f"COMP_WORDS=({typed}); COMP_CWORD={len(words) - 1}",
            "_otdoctor_completion otdoctor",
            'echo "${COMPREPLY[*]}"',
        ]
    proc = _bash("\n".join(lines), base_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [" ".join(expected) for _, expected in BASH_CASES]


def test_install_completion_for_bash_survives_a_new_shell(base_env, home):
    # The shell is named: `bash -c` runs otdoctor in its place, so there may be no shell above it to detect.
    proc = _bash("otdoctor --install-completion bash", base_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bash completion installed" in proc.stdout
    # A new interactive shell reads ~/.bashrc; the completion is registered there.
    again = _bash("source ~/.bashrc; complete -p otdoctor", base_env)
    assert "_otdoctor_completion" in again.stdout and again.stdout.rstrip().endswith("otdoctor"), again.stderr


@pytest.mark.parametrize(
    ("shell", "script_mark", "env", "offer"),
    [
        ("zsh", "compdef _otdoctor_completion otdoctor", {"_OTDOCTOR_COMPLETE": "complete_zsh"}, '"check":'),
        (
            "fish",
            "complete --command otdoctor",
            {"_OTDOCTOR_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args"},
            "check\t",
        ),
    ],
)
def test_zsh_and_fish_scripts_and_their_answers(run_cli, shell, script_mark, env, offer):
    # zsh and fish are not installed here: the script each would source, and the answer otdoctor
    # gives that script for `otdoctor ch<Tab>`, through the same protocol the script speaks.
    # Named from any shell (this test runs under none of them), as a value or after `=`.
    for argv in (["--show-completion", shell], [f"--show-completion={shell}"]):
        script = run_cli(*argv)
        assert script.returncode == 0 and script_mark in script.stdout, script.stderr
    answer = run_cli(env={**env, "_TYPER_COMPLETE_ARGS": "otdoctor ch"})
    assert answer.returncode == 0 and offer in answer.stdout and "smoke" not in answer.stdout


# --config is read differently by each command: its help says how, and never speaks for another.
CONFIG_HELP = {
    ("check",): "to check with its concepts",
    ("fix",): "whose findings to repair",
    ("estimate",): "Read epochs, batch size",
    ("vram",): "to fit on the GPU",
    ("smoke",): "Run the smoke with this training config",
    ("report",): "to put in the bundle",
    ("models", "list"): "base model this training config names",
    ("models", "verify"): "base model this training config names",
}


@pytest.mark.parametrize("command", list(CONFIG_HELP), ids=" ".join)
def test_config_help_describes_its_own_command(run_cli, command):
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("--config <"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("-") or not lines[i].strip())
    line = " ".join(part.strip() for part in lines[start:end])  # the option's help, unwrapped
    assert CONFIG_HELP[command] in line
    if command != ("check",):
        assert "`check`" not in line and "check defaults" not in line
