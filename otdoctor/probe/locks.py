"""One advisory lock per resource (a venv being installed into, a file being downloaded), so a
second otdoctor neither runs a second pip in the same venv nor appends to the same `.part` file.

`fcntl.flock` locks belong to the open file: the kernel drops them when the holder exits or is
killed, so a lock can never outlive an interrupted run. The holder writes its pid and what it is
doing into the lock file, only so that the one refused can say who holds it and why.

`resource_lock(path, what)` keeps the lock files in otdoctor's cache folder, named by the
resource's real path, so nothing is written beside the user's files (a folder that does not exist
yet, a checkout git is about to clone into).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from otdoctor.errors import UserError
from otdoctor.probe.files import cache_dir


class Busy(UserError):
    """Another otdoctor holds the lock: `what` names the resource, `pid` the holder if known."""

    def __init__(self, what: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(
            f"another otdoctor is {what} ({who})",
            exit_code=1,
            hint="wait for it to finish, or stop it with Ctrl-C, then run this again",
        )
        self.what = what
        self.pid = pid


def _holder(fd: int) -> tuple[int | None, str | None]:
    """(pid, what it is doing) as the holder wrote them; None for what cannot be read."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        first, _, rest = text.partition("\n")
        pid = int(first) if first.strip().isdigit() else None
        return (pid or None), (rest.strip() or None)
    return None, None


@contextlib.contextmanager
def exclusive(lock_file: Path, what: str) -> Iterator[None]:
    """Hold `lock_file` exclusively for the block, or raise Busy at once (never wait).

    `what` completes "another otdoctor is ...", e.g. "installing into /x/venv".
    """
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(
            f"cannot create the lock file {lock_file}: {exc.strerror or exc}",
            exit_code=1,
            hint="set OTDOCTOR_CACHE_DIR to a folder you can write to",
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, doing = _holder(fd)
            raise Busy(doing or what, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{what}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock; the file stays, harmless


def lock_path(resource: Path, env: Mapping[str, str] | None = None) -> Path:
    """The lock file for RESOURCE: in otdoctor's cache folder, named by the resource's real path."""
    real = os.path.realpath(resource)
    key = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return cache_dir(env) / "locks" / f"{key}.lock"


def resource_lock(
    resource: Path, what: str, env: Mapping[str, str] | None = None
) -> contextlib.AbstractContextManager[None]:
    """`exclusive` for RESOURCE (a venv, a download target), wherever it is and whether it exists yet."""
    return exclusive(lock_path(resource, env), what)
