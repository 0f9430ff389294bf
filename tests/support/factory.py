"""Builders of real things for tests: OneTrainer-shaped git checkouts, wheels, venvs.

Everything here makes real files and real processes: a git repository made with git, wheels that
pip really installs (a wheel is a zip with a dist-info folder), venvs made by real pyenv
interpreters. Nothing is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

PYENV_ROOT = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def pyenv_python(version: str) -> Path:
    """The real interpreter of an installed pyenv version; a prefix picks the newest match."""
    versions = PYENV_ROOT / "versions"
    if (versions / version / "bin" / "python").exists():
        return versions / version / "bin" / "python"
    matches = sorted(
        (p for p in versions.iterdir() if p.name.startswith(version + ".")),
        key=lambda p: tuple(int(x) for x in p.name.split(".") if x.isdigit()),
    )
    if not matches:
        raise LookupError(f"pyenv has no Python {version} under {versions}")
    return matches[-1] / "bin" / "python"


def pyenv_version(prefix: str) -> str:
    return pyenv_python(prefix).parent.parent.name


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


# Wheels -----------------------------------------------------------------------------------------
def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    requires: Iterable[str] = (),
    modules: Mapping[str, str] | None = None,
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """A real, installable pure-Python wheel. `modules` maps file names to source.

    `entry_points` maps a group to {name: "module:attr"} (written to entry_points.txt), e.g.
    {"otdoctor.checks": {"demo": "demo_plugin.checks:CHECKS"}}.
    """
    dest.mkdir(parents=True, exist_ok=True)
    norm = name.replace("-", "_")
    modules = dict(modules or {f"{norm}/__init__.py": f"__version__ = {version!r}\n"})
    dist_info = f"{norm}-{version}.dist-info"
    metadata = (
        "\n".join(
            [
                "Metadata-Version: 2.1",
                f"Name: {name}",
                f"Version: {version}",
                *[f"Requires-Dist: {r}" for r in requires],
            ]
        )
        + "\n"
    )
    files = dict(modules)
    files[f"{dist_info}/METADATA"] = metadata
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: otdoctor-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/top_level.txt"] = norm + "\n"
    if entry_points:
        files[f"{dist_info}/entry_points.txt"] = "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
            for group, eps in entry_points.items()
        )
    path = dest / f"{norm}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for fname, text in files.items():
            data = text.encode()
            zf.writestr(fname, data)
            record.append(_record_line(fname, data))
        record.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return path


# Venvs ------------------------------------------------------------------------------------------
def make_venv(path: Path, python: Path | str, with_pip: bool = True) -> Path:
    args = [str(python), "-m", "venv", str(path)]
    if not with_pip:
        args.append("--without-pip")
    subprocess.run(args, check=True, capture_output=True)
    return path


def pip_install(venv: Path, *args: str, find_links: Path | None = None) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-input"]
    if find_links is not None:
        cmd += ["--no-index", "--find-links", str(find_links)]
    subprocess.run(cmd + list(args), check=True, capture_output=True)


# OneTrainer-shaped checkouts -------------------------------------------------------------------
LIB_INCLUDE = """\
#!/usr/bin/env bash
# Shaped like OneTrainer's lib.include.sh: the variables otdoctor reads.
export OT_CONDA_CMD="${{OT_CONDA_CMD:-conda}}"
export OT_PYTHON_CMD="${{OT_PYTHON_CMD:-python}}"
export OT_PYTHON_VENV="${{OT_PYTHON_VENV:-venv}}"
export OT_PLATFORM_REQUIREMENTS="${{OT_PLATFORM_REQUIREMENTS:-detect}}"
OT_PYTHON_VERSION_MINIMUM="{minimum}"
OT_PYTHON_VERSION_TOO_HIGH="{too_high}"
"""

TRAIN_PY = """\
# Stand-in for OneTrainer's scripts/train.py (tests replace it where behaviour matters).
import sys
print("train.py", sys.argv[1:])
"""


def make_onetrainer(
    root: Path,
    minimum: str = "3.10",
    too_high: str = "3.14",
    global_requirements: Iterable[str] = (),
    platform_requirements: Mapping[str, Iterable[str]] | None = None,
    python_version: str | None = None,
    git_init: bool = True,
) -> Path:
    """A folder shaped like a OneTrainer checkout, committed to a real git repository.

    `platform_requirements` maps file names (requirements-cuda.txt, requirements-default.txt...)
    to their lines; requirements-global.txt gets `global_requirements`.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "scripts" / "util").mkdir(parents=True, exist_ok=True)
    (root / "modules").mkdir(exist_ok=True)
    (root / "modules" / "__init__.py").write_text("")
    (root / "lib.include.sh").write_text(LIB_INCLUDE.format(minimum=minimum, too_high=too_high))
    for launcher in ("install.sh", "start-ui.sh", "update.sh", "run-cmd.sh"):
        p = root / launcher
        p.write_text("#!/usr/bin/env bash\nsource lib.include.sh\n")
        p.chmod(0o755)
    for launcher in ("install.bat", "start-ui.bat", "update.bat"):
        (root / launcher).write_text("@echo off\r\n")
    (root / "scripts" / "train.py").write_text(TRAIN_PY)
    (root / "requirements-global.txt").write_text("\n".join(global_requirements) + "\n")
    platform_requirements = dict(platform_requirements or {})
    platform_requirements.setdefault("requirements-default.txt", ["-r requirements-global.txt"])
    platform_requirements.setdefault(
        "requirements-cuda.txt", ["--extra-index-url https://download.pytorch.org/whl/cu130"]
    )
    platform_requirements.setdefault(
        "requirements-cuda-legacy.txt", ["--extra-index-url https://download.pytorch.org/whl/cu126"]
    )
    for fname, lines in platform_requirements.items():
        (root / fname).write_text("\n".join(lines) + "\n")
    (root / "requirements.txt").write_text("-r requirements-global.txt\n-r requirements-cuda.txt\n")
    (root / ".gitignore").write_text("venv/\nworkspace/\nworkspace-cache/\nmodels/\nsecrets.json\nupdate.var\n")
    if python_version:
        (root / ".python-version").write_text(python_version + "\n")
    if git_init:
        git(root, "init", "-q", "-b", "master")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "OneTrainer-shaped checkout")
    return root


def otdoctor_exe() -> str:
    """The real console script installed beside the interpreter running the tests."""
    exe = Path(sys.executable).parent / "otdoctor"
    return str(exe)
