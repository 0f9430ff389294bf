"""Temporary run folders: `<cache>/smoke/tmp/run-<pid>-<random>`, one per smoke run.

When otdoctor itself is killed (SIGKILL leaves no chance to clean up), the next smoke run removes
folders whose pid is gone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from otdoctor.probe.files import cache_dir
from otdoctor.probe.processes import pid_alive


def tmp_root() -> Path:
    return cache_dir() / "smoke" / "tmp"


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove run folders left by an otdoctor that was killed; returns what was removed."""
    root = root or tmp_root()
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        parts = entry.name.split("-")
        if len(parts) >= 3 and parts[0] == "run" and parts[1].isdigit() and not pid_alive(int(parts[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextmanager
def run_folder(keep: bool = False) -> Iterator[Path]:
    """A fresh folder for one smoke run, removed on exit (also on Ctrl-C and SIGTERM) unless `keep`."""
    root = tmp_root()
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale(root)
    path = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
