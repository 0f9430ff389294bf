"""sha256 of large files at the speed of the disk, several files at once, with a cache.

hashlib releases the GIL while it digests a large buffer, so plain threads hash files in parallel;
reads go straight into one reused buffer (`readinto`, unbuffered) so the only per-byte work is the
digest itself. Results are cached by (st_dev, st_ino, size, mtime_ns): a file that was not
rewritten is not read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from otdoctor.probe.files import cache_dir, read_json, write_json

CHUNK_BYTES = 8 * 1024 * 1024
CACHE_FILE = "model-verify.json"
CACHE_MAX_ENTRIES = 2000
CACHE_VERSION = 1

ProgressFn = Callable[[int], None]


def sha256_file(path: Path, on_bytes: ProgressFn | None = None, chunk_bytes: int = CHUNK_BYTES) -> str:
    digest = hashlib.sha256()
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        if hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):  # lets the kernel read ahead further
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            n = fh.readinto(view)
            if not n:
                break
            digest.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
    return digest.hexdigest()


def sha256_files(
    paths: Iterable[Path], on_bytes: ProgressFn | None = None, max_workers: int = 4
) -> dict[Path, str | OSError]:
    """Hash several files in parallel threads; an unreadable file maps to its OSError."""
    paths = list(paths)
    lock = threading.Lock()

    def report(n: int) -> None:
        if on_bytes is not None:
            with lock:
                on_bytes(n)

    def one(p: Path) -> str | OSError:
        try:
            return sha256_file(p, report)
        except OSError as exc:
            return exc

    if not paths:
        return {}
    workers = max(1, min(max_workers, len(paths), os.cpu_count() or 1))
    if workers == 1:
        return {p: one(p) for p in paths}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sha256") as pool:
        return dict(zip(paths, pool.map(one, paths), strict=True))


def file_key(st: os.stat_result) -> str:
    """Identity of one version of a file: a rewrite changes mtime_ns or size, a new copy the inode."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


class VerifyCache:
    """Facts about files (kind, architecture, sha256), keyed by `file_key`; never an error."""

    def __init__(self, path: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.path = path or cache_dir(env) / CACHE_FILE
        self._lock = threading.Lock()
        self._dirty = False
        raw = read_json(self.path)
        files = raw.get("files") if isinstance(raw, dict) and raw.get("version") == CACHE_VERSION else None
        self._files: dict[str, dict[str, Any]] = dict(files) if isinstance(files, dict) else {}

    def get(self, st: os.stat_result) -> dict[str, Any] | None:
        with self._lock:
            facts = self._files.get(file_key(st))
        return dict(facts) if isinstance(facts, dict) else None

    def put(self, st: os.stat_result, facts: Mapping[str, Any]) -> None:
        with self._lock:
            key = file_key(st)
            if self._files.get(key) != dict(facts):
                self._files.pop(key, None)  # re-insert: the dict's order is the age order
                self._files[key] = dict(facts)
                self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            # Merge with what another run may have written meanwhile; keep the newest entries.
            raw = read_json(self.path)
            files = dict(raw["files"]) if isinstance(raw, dict) and isinstance(raw.get("files"), dict) else {}
            files.update(self._files)
            if len(files) > CACHE_MAX_ENTRIES:
                files = dict(list(files.items())[-CACHE_MAX_ENTRIES:])
            try:
                write_json(self.path, {"version": CACHE_VERSION, "files": files})
            except OSError:
                return  # a read-only cache folder costs speed, not correctness
            self._dirty = False
