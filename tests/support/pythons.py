"""Real Python installations for the python.* and venv.* tests.

- `copy_pyenv_version`: a copy of a real pyenv version (hard links where the filesystem allows,
  so it is cheap), optionally without some compiled stdlib modules: a real interpreter built
  "without libssl-dev", as pyenv leaves it when the -dev packages are missing.
- `pyenv_root`: a PYENV_ROOT of our own whose versions are the real ones (symlinked) or copies,
  with its own global version file, so a test decides what pyenv has installed.
- `check_json`: run the real `otdoctor check --format json` and index the results by id.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.support.factory import PYENV_ROOT, pyenv_version

# Big parts of a pyenv version that no test needs.
_SKIP = {"test", "site-packages", "__pycache__", "idlelib", "turtledemo", "lib2to3"}


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_pyenv_version(version: str, dest: Path, drop_modules: Iterable[str] = ()) -> Path:
    """Copy ~/.pyenv/versions/VERSION to DEST; `drop_modules` removes lib-dynload/NAME.*.so.

    Returns DEST. Files are hard links into the original (never written to: Python replaces
    .pyc files by rename), directories are real, so deleting in the copy leaves pyenv intact.
    """
    name = pyenv_version(version)
    src = PYENV_ROOT / "versions" / name
    shutil.copytree(
        src,
        dest,
        symlinks=True,
        copy_function=_link_or_copy,
        ignore=lambda d, names: [n for n in names if n in _SKIP or n.startswith("config-")],
    )
    dynload = next((dest / "lib").glob("python3*/lib-dynload"))
    for module in drop_modules:
        for so in dynload.glob(f"{module}.*so"):
            so.unlink()
    return dest


def pyenv_root(
    root: Path,
    versions: Mapping[str, Path] | Iterable[str] = (),
    global_version: str | None = None,
) -> Path:
    """A PYENV_ROOT with `versions/NAME` for each version: a real one (by prefix: "3.10" ->
    the installed 3.10.x, symlinked) or, from a mapping, a folder the test made."""
    (root / "versions").mkdir(parents=True, exist_ok=True)
    items = versions.items() if isinstance(versions, Mapping) else [(pyenv_version(v), None) for v in versions]
    for name, folder in items:
        target = folder if folder is not None else PYENV_ROOT / "versions" / name
        (root / "versions" / name).symlink_to(target, target_is_directory=True)
    if global_version:
        (root / "version").write_text(global_version + "\n")
    return root


def check_json(run_cli, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None):
    """(process, {check id: result dict}, report) for `otdoctor check ARGS --format json`."""
    proc = run_cli("check", *args, "--format", "json", env=dict(env or {}), cwd=cwd)
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout)
    return proc, {c["id"]: c for c in report["checks"]}, report


def bin_dir_with(tmp: Path, **links: Path) -> Path:
    """A folder of symlinks (`python` -> a real interpreter), to build a PATH without pyenv."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        (tmp / name).symlink_to(target)
    return tmp
