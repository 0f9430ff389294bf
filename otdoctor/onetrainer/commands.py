"""OneTrainer's command line, `scripts/train.py` run by the checkout's venv interpreter: the argv
`otdoctor smoke` runs, and the line otdoctor prints for a user to paste.

A printed line must work when pasted from any folder: it changes into the checkout first (train.py
imports `modules` from the current folder), names the venv's interpreter by its absolute path (a
bare `python` is whatever the user's shell finds) and gives the config as an absolute path (a
relative one would point into the checkout after the `cd`). Every word goes through shlex.quote
(`#.json`, the UI's last-used config, would start a comment otherwise). Without a known checkout
the line is a shell comment: it shows the form and cannot run by accident.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from otdoctor.probe.python import venv_python

TRAIN_SCRIPT = "scripts/train.py"
FOLDER_PLACEHOLDER = "<OneTrainer folder>"
CONFIG_PLACEHOLDER = "<config.json>"


def venv_folder(ot_dir: Path, env: Mapping[str, str]) -> Path:
    """OneTrainer's venv: $OT_PYTHON_VENV (as its launchers read it), relative to the checkout."""
    p = Path(env.get("OT_PYTHON_VENV") or "venv").expanduser()
    return p if p.is_absolute() else ot_dir / p


def train_argv(python: Path | str, config_args: Sequence[str], values: Iterable[str]) -> list[str]:
    """`python -u scripts/train.py CONFIG_ARGS --config-value V...`, run from the checkout."""
    argv = [str(python), "-u", TRAIN_SCRIPT, *config_args]
    for value in values:
        argv += ["--config-value", value]
    return argv


def train_line(
    ot_dir: Path | None, env: Mapping[str, str], cwd: Path, config: Path | None, values: Iterable[str]
) -> str:
    """The line to paste: `cd CHECKOUT && VENV_PYTHON scripts/train.py --config-path CONFIG ...`.

    CONFIG relative to CWD (the user's folder) is made absolute. With no checkout (OT_DIR None) or
    no config file, a shell comment showing the form with placeholders."""
    config_word = shlex.quote(str(cwd / config)) if config is not None else CONFIG_PLACEHOLDER
    tail = [f"--config-value {shlex.quote(v)}" for v in values]
    if ot_dir is None:
        python = f"{FOLDER_PLACEHOLDER}/venv/bin/python"
        form = f"cd {FOLDER_PLACEHOLDER} && {python} {TRAIN_SCRIPT} --config-path {config_word}"
        return " ".join([f"# OneTrainer's folder is not known here (pass --ot-dir): {form}", *tail])
    ot_dir = cwd / ot_dir
    python_word = shlex.quote(str(venv_python(venv_folder(ot_dir, env))))
    head = f"cd {shlex.quote(str(ot_dir))} && {python_word} {TRAIN_SCRIPT} --config-path {config_word}"
    if config is None:
        head = f"# with your config for {CONFIG_PLACEHOLDER}: {head}"
    return " ".join([head, *tail])
