"""Running `otdoctor` as an unprivileged user (nobody) against places root made (issue 12).

The pyenv under /root is closed to others, so otdoctor runs on a copy of this interpreter in a
scratch folder everyone may enter, with the repository's .venv for its libraries, through
`setpriv` (util-linux).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.pythons import copy_pyenv_version

NOBODY = 65534
_LAUNCH = "import site, sys\nsite.addsitedir(sys.argv.pop(1))\nfrom otdoctor.cli import main\nmain(sys.argv[1:])\n"


def why_not() -> str | None:
    """Why otdoctor cannot be run as nobody here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to make folders of another user and to run otdoctor as nobody"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux)"
    libs = [p for p in site.getsitepackages() if Path(p).is_dir()]
    if not libs or not all(os.access(p, os.R_OK | os.X_OK) for p in Path(libs[0]).parents if str(p) != "/"):
        return f"otdoctor's libraries ({libs[:1]}) are not readable by nobody"
    return None


@contextmanager
def scratch_world(prefix: str) -> Iterator[Path]:
    """A scratch folder everyone may enter (pytest's tmp_path is root's own), with a Python copy."""
    top = Path(tempfile.mkdtemp(prefix=prefix))
    top.chmod(0o755)
    copy_pyenv_version(f"{sys.version_info.major}.{sys.version_info.minor}", top / "python")
    (top / "launch.py").write_text(_LAUNCH)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def run_as_nobody(world: Path, home: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`otdoctor ARGS` as nobody in HOME, with a bare environment plus ENV."""
    python = world / "python" / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    libs = next(p for p in site.getsitepackages() if Path(p).is_dir())
    base = {"HOME": str(home), "PATH": "/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200"}
    # A Python built with --enable-shared finds libpython by its build path, which nobody cannot read.
    base["LD_LIBRARY_PATH"] = str(world / "python" / "lib")
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "env", "-i"]
        + [f"{k}={v}" for k, v in {**base, **env}.items()]
        + [str(python), str(world / "launch.py"), libs, *args],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def folder(path: Path, mode: int = 0o755) -> Path:
    """A folder made by root with MODE (0o700: closed to nobody)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def nobody_home(world: Path, name: str) -> Path:
    """A home folder in WORLD that nobody owns."""
    home = folder(world / name)
    os.chown(home, NOBODY, NOBODY)
    return home
