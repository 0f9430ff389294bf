"""otdoctor's own cache folder: hash results, smoke results, facts about venvs.

`$OTDOCTOR_CACHE_DIR`, else `$XDG_CACHE_HOME/otdoctor`, else `~/.cache/otdoctor`. Writes are
atomic (temporary file, then rename) so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("OTDOCTOR_CACHE_DIR"):
        return Path(env["OTDOCTOR_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "otdoctor"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$OTDOCTOR_CONFIG_DIR`, else `$XDG_CONFIG_HOME/otdoctor`, else `~/.config/otdoctor`."""
    env = os.environ if env is None else env
    if env.get("OTDOCTOR_CONFIG_DIR"):
        return Path(env["OTDOCTOR_CONFIG_DIR"])
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "otdoctor"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` that replaces it only when the block ends without error.

    The one way otdoctor writes a user-visible or cached file: an interrupted or failed write never
    leaves half a file under the final name, and the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: Path) -> Any | None:
    """The JSON in `path`, or None when it is missing or unreadable (a cache is never an error)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=1, sort_keys=True))


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: "a named pipe", "a directory", ..."""
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


class NotRegularFile(OSError):
    """A path that must be a regular file is something else: reading it could block or never end."""


@contextmanager
def _open_regular(path: Path) -> Iterator[tuple[Any, os.stat_result]]:
    """`path` opened for reading, with its `fstat`, if it is a regular file; raises OSError otherwise.

    Opened without blocking (a FIFO opens at once with O_NONBLOCK) and refused unless `fstat` of
    that very descriptor says regular file, so a pipe, a device or a folder given where a file is
    expected is an error message, never a hang or an endless read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({file_kind(st.st_mode)})", str(path))
        yield fh, st


def read_regular_bytes(path: Path, limit_bytes: int) -> bytes:
    """The bytes of `path` if it is a regular file of at most `limit_bytes`; raises OSError otherwise."""
    with _open_regular(path) as (fh, _):
        data = fh.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise NotRegularFile(errno.EFBIG, f"larger than {limit_bytes} bytes", str(path))
    return data


def read_regular_tail(path: Path, limit_bytes: int) -> bytes:
    """The last `limit_bytes` of `path` if it is a regular file (a long log's end); raises OSError otherwise."""
    with _open_regular(path) as (fh, st):
        if st.st_size > limit_bytes:
            fh.seek(st.st_size - limit_bytes)
        return bytes(fh.read(limit_bytes))


def denied(path: Path | str) -> str:
    """The one wording of a place otdoctor may not read, used by every finding about one."""
    return f"cannot read {path} (permission denied)"


def refusing_folder(path: Path, listing: bool = True) -> str | None:
    """The highest folder on the way to `path` (or `path` itself, which must also be listable when
    `listing`) that this user may not enter; None when every step is open or `path` does not exist."""
    path = Path(os.path.abspath(path))
    for folder in [*reversed(path.parents), path]:
        if not os.path.exists(folder):
            return None
        mode = os.X_OK | (os.R_OK if listing and folder == path else 0)
        if not os.access(folder, mode):
            return str(folder)
    return None
