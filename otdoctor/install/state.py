"""The install's state file in the checkout: which phases finished (with the requirements' hash),
which venvs were moved aside. Every phase is still verified on disk, never trusted from it alone."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from otdoctor.probe.files import read_json, write_json

LOG_NAME = "otdoctor-install.log"
STATE_NAME = ".otdoctor-install.json"
PHASES = ("checkout", "python", "venv", "pip", "requirements")


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def read_state(ot_dir: Path) -> dict[str, Any]:
    data = read_json(ot_dir / STATE_NAME)
    return data if isinstance(data, dict) else {"phases": {}}


def write_state(ot_dir: Path, state: dict[str, Any]) -> None:
    write_json(ot_dir / STATE_NAME, state)


def save_phase(ot_dir: Path, phase: str, repo_url: str, **facts: Any) -> None:
    """Record a finished phase (`repo_url` already redacted)."""
    state = read_state(ot_dir)
    state.setdefault("phases", {})[phase] = {"finished": _now(), **facts}
    state["repo_url"] = repo_url
    write_state(ot_dir, state)


def forget_phases_from(ot_dir: Path, phase: str) -> None:
    """This phase and the ones after it must run again."""
    state = read_state(ot_dir)
    phases = state.get("phases", {})
    later = PHASES[PHASES.index(phase) :]
    if any(p in phases for p in later):
        for p in later:
            phases.pop(p, None)
        write_state(ot_dir, state)


def installed_platform_file(ot_dir: Path) -> str | None:
    """The platform requirements file the last `otdoctor install` used in this checkout."""
    data = read_json(ot_dir / STATE_NAME)
    if isinstance(data, dict):
        return (data.get("phases", {}).get("requirements") or {}).get("file")
    return None


def save_requirements(ot_dir: Path, platform_file: str, requirements_hash: str, platform_key: str | None) -> None:
    """After a repair reinstalled the requirements, keep the install state truthful."""
    state = read_state(ot_dir)
    state.setdefault("phases", {})["requirements"] = {
        "finished": _now(),
        "hash": requirements_hash,
        "file": platform_file,
        "platform": platform_key,
    }
    write_state(ot_dir, state)


def remember_aside(ot_dir: Path, aside: Path) -> None:
    """Record a venv moved aside, so a run killed before the new venv works still cleans it later."""
    state = read_state(ot_dir)
    state.setdefault("venv_aside", []).append(str(aside))
    write_state(ot_dir, state)


def forget_aside(ot_dir: Path, aside: Path | None = None) -> list[str]:
    """Drop one recorded venv (it was put back), or all of them (returned: a working venv replaced them)."""
    state = read_json(ot_dir / STATE_NAME)
    if not isinstance(state, dict) or not state.get("venv_aside"):
        return []
    recorded = list(state["venv_aside"])
    state["venv_aside"] = [a for a in recorded if aside is not None and a != str(aside)]
    if not state["venv_aside"]:
        state.pop("venv_aside")
    write_state(ot_dir, state)
    return recorded if aside is None else []
