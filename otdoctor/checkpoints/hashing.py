"""sha256 of large files at the speed of the disk, several files at once, with a cache.

hashlib releases the GIL while it digests a large buffer, so plain threads hash files in parallel;
reads go straight into one reused buffer (`readinto`, unbuffered) so the only per-byte work is the
digest itself. Results are cached by (st_dev, st_ino, size, mtime_ns, ctime_ns): a file that was
not rewritten is not read again, and one overwritten in place is, even when its mtime was put back
(no program can set ctime). The cache file is otdoctor's own but lives on the user's disk: an entry
of the wrong shape is dropped and its facts computed again, never trusted and never an error.
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
CACHE_VERSION = 2  # 2: the key holds ctime, entries are checked

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
    """Identity of one version of a file: a rewrite changes mtime or ctime or size, a new copy the inode."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and len(value) < 4096


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# What a cached entry may hold: each key's test. Anything else makes the entry corrupt.
_FIELDS: dict[str, Callable[[Any], bool]] = {
    "kind": lambda v: v in ("safetensors", "pickle", "not-a-model"),
    "missing_bytes": _is_count,
    "tensors": lambda v: _is_count(v) and v >= 0,
    "architecture": _is_text,
    "sha256": _is_sha256,
    "error": _is_text,
    "invalid": _is_text,
    "page": _is_text,
}


# Per kind, the keys one of which sets must be there: an entry missing `missing_bytes` would make a
# truncated file look complete.
_NEEDED: dict[str, tuple[frozenset[str], ...]] = {
    "safetensors": (frozenset({"missing_bytes", "tensors", "architecture"}), frozenset({"invalid"})),
    "pickle": (frozenset(),),
    "not-a-model": (frozenset({"error"}),),
}


def valid_facts(facts: Any) -> bool:
    """Whether a cache entry has the shape `verdict.file_facts` (plus a sha256) gives."""
    if not isinstance(facts, dict) or not all(k in _FIELDS and _FIELDS[k](v) for k, v in facts.items()):
        return False
    return any(need <= facts.keys() for need in _NEEDED.get(facts.get("kind"), ()))  # type: ignore[arg-type]


def _valid_entries(raw: Any) -> dict[str, dict[str, Any]]:
    files = raw.get("files") if isinstance(raw, dict) and raw.get("version") == CACHE_VERSION else None
    if not isinstance(files, dict):
        return {}
    return {k: dict(v) for k, v in files.items() if isinstance(k, str) and valid_facts(v)}


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return _valid_entries(read_json(path))
    except RecursionError:  # a cache file nested absurdly deep is a corrupt cache, nothing more
        return {}


class VerifyCache:
    """Facts about files (kind, architecture, sha256), keyed by `file_key`; never an error."""

    def __init__(self, path: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        self.path = path or cache_dir(env) / CACHE_FILE
        self._lock = threading.Lock()
        self._dirty = False
        self._files = _read(self.path)

    def get(self, st: os.stat_result) -> dict[str, Any] | None:
        with self._lock:
            facts = self._files.get(file_key(st))
        return dict(facts) if facts is not None else None

    def put(self, st: os.stat_result, facts: Mapping[str, Any]) -> None:
        if not valid_facts(dict(facts)):
            return  # only what a later run can trust is kept
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
            files = _read(self.path)
            files.update(self._files)
            if len(files) > CACHE_MAX_ENTRIES:
                files = dict(list(files.items())[-CACHE_MAX_ENTRIES:])
            try:
                write_json(self.path, {"version": CACHE_VERSION, "files": files})
            except OSError:
                return  # a read-only cache folder costs speed, not correctness
            self._dirty = False
