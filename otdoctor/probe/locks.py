"""One advisory lock per resource (a venv being installed into, a file being downloaded), so a
second otdoctor neither runs a second pip in the same venv nor appends to the same `.part` file.

`fcntl.flock` locks belong to the open file: the kernel drops them when the holder exits or is
killed, so a lock can never outlive an interrupted run. The holder's pid is written into the lock
file only to name it in the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from otdoctor.errors import UserError


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


def _holder(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "0") or None
    return None


@contextlib.contextmanager
def exclusive(lock_file: Path, what: str) -> Iterator[None]:
    """Hold `lock_file` exclusively for the block, or raise Busy at once (never wait).

    `what` completes "another otdoctor is ...", e.g. "installing into /x/venv".
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(what, _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock; the file stays, harmless
