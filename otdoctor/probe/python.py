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
from otdoctor.probe.files import read_regular_bytes, refusing_folder

SCRIPT = Path(__file__).with_name("interpreter_script.py")


@dataclass(frozen=True)
class PyenvInfo:
    root: Path | None  # PYENV_ROOT or `pyenv root`; None when pyenv is absent
    executable: str | None
    versions: tuple[str, ...] = ()  # installed, from $PYENV_ROOT/versions
    global_version: str | None = None
    unreadable: tuple[str, ...] = ()  # folders or files under the root this user may not read


class _Reader:
    """File tests that record a permission error instead of raising it (another user's folder)."""

    def __init__(self) -> None:
        self.unreadable: list[str] = []

    def _denied(self, path: Path) -> None:
        culprit = refusing_folder(path, listing=False) or refusing_folder(path) or str(path)
        if culprit not in self.unreadable:
            self.unreadable.append(culprit)

    def is_dir(self, path: Path) -> bool:
        return self._stat_ok(path, os.path.isdir)

    def is_file(self, path: Path) -> bool:
        return self._stat_ok(path, os.path.isfile)

    def _stat_ok(self, path: Path, test: Any) -> bool:
        try:
            os.stat(path)
        except PermissionError:
            self._denied(path)
            return False
        except (OSError, ValueError):
            return False
        return bool(test(path))

    def listdir(self, path: Path) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except PermissionError:
            self._denied(path)
        except OSError:
            pass
        return []

    def text(self, path: Path) -> str | None:
        try:
            return read_regular_bytes(path, 64 * 1024).decode("utf-8", "replace")
        except PermissionError:
            self._denied(path)
        except OSError:
            pass
        return None


@dataclass(frozen=True)
class VersionRequest:
    """Which Python pyenv would pick in a folder, and why (`pyenv version` without running it)."""

    version: str | None
    source: str  # "PYENV_VERSION", "/path/.python-version", "global", "none"
    installed: bool
    prefix: Path | None  # $PYENV_ROOT/versions/X when installed
    unreadable: tuple[str, ...] = ()  # folders on the way up this user may not read
    overrides: tuple[str, str] | None = None  # (.python-version file, its version) PYENV_VERSION hides


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
    files = _Reader()
    # `pyenv root` prints $PYENV_ROOT or ~/.pyenv; reading that directly saves a slow bash start.
    if root is None and (exe or files.is_file(home / ".pyenv" / "bin" / "pyenv")):
        root = home / ".pyenv"
    if root is None:
        return PyenvInfo(None, exe, unreadable=tuple(files.unreadable))
    if exe is None and files.is_file(root / "bin" / "pyenv"):
        exe = str(root / "bin" / "pyenv")
    versions_dir = root / "versions"
    versions = tuple(n for n in files.listdir(versions_dir) if files.is_dir(versions_dir / n / "bin"))
    words = (files.text(root / "version") or "").split() if files.is_file(root / "version") else []
    return PyenvInfo(root, exe, versions, words[0] if words else None, tuple(files.unreadable))


def resolve_version(pyenv: PyenvInfo, folder: Path, env: Mapping[str, str]) -> VersionRequest:
    """pyenv's own order: PYENV_VERSION, the nearest .python-version upwards, then global."""
    files = _Reader()
    pinned = _nearest_pin(files, folder)
    version, source, overrides = None, "none", None
    if env.get("PYENV_VERSION"):
        version, source = env["PYENV_VERSION"].split(":")[0], "PYENV_VERSION"
        overrides = pinned
    elif pinned is not None:
        version, source = pinned[1], pinned[0]
    elif pyenv.global_version:
        version, source = pyenv.global_version, "global"
    prefix = match_installed(pyenv, version) if version else None
    installed = prefix is not None or version == "system"
    return VersionRequest(version, source, installed, prefix, tuple(files.unreadable), overrides)


def pinned_version(pyenv: PyenvInfo, folder: Path) -> VersionRequest:
    """What the files select in `folder` (.python-version, else global), whatever PYENV_VERSION says:
    what a shell without `pyenv shell` (a new terminal, the launcher from a desktop icon) gets."""
    return resolve_version(pyenv, folder, {})


def _nearest_pin(files: _Reader, folder: Path) -> tuple[str, str] | None:
    """(path, version) of the nearest .python-version from `folder` upwards that names a version."""
    for d in [folder, *folder.parents]:
        f = d / ".python-version"
        if files.is_file(f):
            words = [w for w in (files.text(f) or "").split() if not w.startswith("#")]
            if words:
                return str(f), words[0]
    return None


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
    out: dict[str, str] = {}
    files = _Reader()
    text = files.text(venv / "pyvenv.cfg")
    for line in (text or "").splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip().lower()] = value.strip()
    return out
