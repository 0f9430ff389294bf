"""Cheap fingerprints of installed files, to know when a cached answer about a venv is stale.

A fingerprint is (path, size, mtime_ns) per file: `stat`, no reading. Reinstalling a package
rewrites its files, so the fingerprint changes without otdoctor having to import anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def stat_signature(paths: Iterable[Path]) -> list[list]:
    """[[path, size_bytes, mtime_ns], ...]; a missing file is [path, None, None]."""
    out: list[list] = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([str(p), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(p), None, None])
    return out


def glob_names(folder: Path, pattern: str) -> list[Path]:
    """`ls FOLDER/PATTERN`, sorted; empty when the folder cannot be read."""
    try:
        return sorted(folder.glob(pattern))
    except OSError:
        return []


def read_small_text(path: Path, limit_bytes: int = 4096) -> str | None:
    """The start of a small text file (/proc/driver/nvidia/version), or None."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit_bytes).decode("utf-8", errors="replace")
    except OSError:
        return None


def realpath(path: Path) -> str:
    return os.path.realpath(path)
