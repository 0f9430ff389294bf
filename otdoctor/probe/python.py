"""pyenv and Python interpreters: which Python a folder resolves to, and what an interpreter has.

Facts about another interpreter come from running it with `-I interpreter_script.py`: otdoctor
never imports torch (or anything from the user's venv) into its own process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.probe.commands import CommandResult, run, which

SCRIPT = Path(__file__).with_name("interpreter_script.py")


@dataclass(frozen=True)
class PyenvInfo:
    root: Path | None  # PYENV_ROOT or `pyenv root`; None when pyenv is absent
    executable: str | None
    versions: tuple[str, ...] = ()  # installed, from $PYENV_ROOT/versions
    global_version: str | None = None


@dataclass(frozen=True)
class VersionRequest:
    """Which Python pyenv would pick in a folder, and why (`pyenv version` without running it)."""

    version: str | None
    source: str  # "PYENV_VERSION", "/path/.python-version", "global", "none"
    installed: bool
    prefix: Path | None  # $PYENV_ROOT/versions/X when installed


@dataclass(frozen=True)
class InterpreterInfo:
    """What an interpreter said about itself; `error` is set when it could not say anything."""

    executable: str
    ok: bool
    error: str | None = None
    version: tuple[int, int, int] | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def version_string(self) -> str | None:
        return ".".join(map(str, self.version)) if self.version else None

    @property
    def missing_stdlib(self) -> dict[str, str]:
        return {k: v for k, v in (self.data.get("stdlib") or {}).items() if v}


def pyenv_info(env: Mapping[str, str], home: Path) -> PyenvInfo:
    """`pyenv root`, `pyenv versions --bare` and `pyenv global`, read from the files directly."""
    exe = which("pyenv", env)
    root_str = env.get("PYENV_ROOT")
    root = Path(root_str) if root_str else None
    # `pyenv root` prints $PYENV_ROOT or ~/.pyenv; reading that directly saves a slow bash start.
    if root is None and (exe or (home / ".pyenv" / "bin" / "pyenv").exists()):
        root = home / ".pyenv"
    if root is None:
        return PyenvInfo(None, exe)
    if exe is None and (root / "bin" / "pyenv").exists():
        exe = str(root / "bin" / "pyenv")
    versions_dir = root / "versions"
    versions: tuple[str, ...] = ()
    if versions_dir.is_dir():
        versions = tuple(sorted(p.name for p in versions_dir.iterdir() if (p / "bin").is_dir()))
    global_version = None
    global_file = root / "version"
    if global_file.is_file():
        words = global_file.read_text(errors="replace").split()
        global_version = words[0] if words else None
    return PyenvInfo(root, exe, versions, global_version)


def resolve_version(pyenv: PyenvInfo, folder: Path, env: Mapping[str, str]) -> VersionRequest:
    """pyenv's own order: PYENV_VERSION, the nearest .python-version upwards, then global."""
    version: str | None = None
    source = "none"
    if env.get("PYENV_VERSION"):
        version, source = env["PYENV_VERSION"].split(":")[0], "PYENV_VERSION"
    else:
        for d in [folder, *folder.parents]:
            f = d / ".python-version"
            if f.is_file():
                words = [w for w in f.read_text(errors="replace").split() if not w.startswith("#")]
                if words:
                    version, source = words[0], str(f)
                    break
        if version is None and pyenv.global_version:
            version, source = pyenv.global_version, "global"
    prefix = match_installed(pyenv, version) if version else None
    return VersionRequest(version, source, prefix is not None or version == "system", prefix)


def match_installed(pyenv: PyenvInfo, version: str) -> Path | None:
    """pyenv accepts a prefix (`3.10` -> newest installed 3.10.x); so do we."""
    if pyenv.root is None:
        return None
    if version in pyenv.versions:
        return pyenv.root / "versions" / version
    from packaging.version import InvalidVersion, Version

    candidates = []
    for v in pyenv.versions:
        if v.startswith(version + "."):
            try:
                candidates.append((Version(v), v))
            except InvalidVersion:
                continue
    if not candidates:
        return None
    return pyenv.root / "versions" / max(candidates)[1]


def interpreter_info(
    python: Path | str, env: Mapping[str, str], dists: bool = False, torch: bool = False, timeout_s: float = 20.0
) -> InterpreterInfo:
    """`python -I -c 'import sys, ssl, ...'`: version, stdlib modules, distributions, torch."""
    args = [str(python), "-I", str(SCRIPT)]
    if dists:
        args.append("--dists")
    if torch:
        args.append("--torch")
    clean_env = {k: v for k, v in env.items() if not k.startswith("PYTHON")}
    res: CommandResult = run(args, clean_env, timeout_s=timeout_s)
    if not res.ok:
        return InterpreterInfo(str(python), False, error=res.describe_failure())
    try:
        data = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return InterpreterInfo(str(python), False, error=f"unreadable answer: {res.stdout[:200]!r}")
    version = tuple(data.get("version") or ())
    return InterpreterInfo(str(python), True, version=version if len(version) == 3 else None, data=data)


def venv_python(venv: Path) -> Path:
    """The interpreter of a venv, on POSIX or Windows layouts."""
    for rel in ("bin/python", "bin/python3", "Scripts/python.exe"):
        p = venv / rel
        if os.path.lexists(p):
            return p
    return venv / "bin" / "python"


def read_pyvenv_cfg(venv: Path) -> dict[str, str]:
    cfg = venv / "pyvenv.cfg"
    out: dict[str, str] = {}
    if not cfg.is_file():
        return out
    for line in cfg.read_text(errors="replace").splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip().lower()] = value.strip()
    return out
