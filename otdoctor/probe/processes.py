"""Processes on this machine: who owns a PID, what it runs, and stopping one (psutil).

`describe(pid)` replaces `ps -o user=,lstart=,comm=,args= -p PID`; `stop(listed)` replaces
`kill PID`, then `kill -9 PID` only when asked. The guards sit here, next to the signal, so no
caller can forget them: only processes of the current user are signalled, never otdoctor or a
process above it, and only when the PID still names the process that was listed (same start time
and command line): a PID freed and handed to another program between the listing and the signal
is left alone. Which processes may be listed for stopping at all is `otdoctor.gpu.stopping`.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessDetails:
    pid: int
    visible: bool  # False: no such PID here (exited, or another PID namespace: a container)
    user: str | None = None
    uid: int | None = None
    name: str | None = None
    cmdline: tuple[str, ...] = ()
    owned_by_current_user: bool = False
    start_time: float | None = None  # seconds since the epoch; with the PID, it names one process

    def same_process(self, other: ProcessDetails) -> bool:
        """Is OTHER (looked at later) the very process this one describes, not a PID reused since?"""
        return (
            self.visible
            and other.visible
            and self.pid == other.pid
            and self.start_time is not None
            and self.start_time == other.start_time
            and self.cmdline == other.cmdline
        )

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else (f"[{self.name}]" if self.name else "")


@dataclass(frozen=True)
class StopResult:
    pid: int
    stopped: bool
    signal: str | None  # "SIGTERM", "SIGKILL" or None when nothing was sent
    message: str


def current_uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def current_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(current_uid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USERNAME") or os.environ.get("USER") or "?"


def pid_alive(pid: int) -> bool:
    """Is PID a running process here? A zombie is not: it has exited and the driver has freed its memory."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def process_tree(pid: int) -> set[int]:
    """PID and all its descendants (only PID when psutil cannot see them)."""
    pids = {pid}
    with suppress(Exception):
        pids |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
    return pids


def tree_rss_bytes(pid: int) -> int | None:
    """Resident memory of PID and its descendants together; None once PID is gone."""
    total = None
    for p in process_tree(pid):
        with suppress(psutil.Error):
            total = (total or 0) + psutil.Process(p).memory_info().rss
    return total


def lineage() -> frozenset[int]:
    """otdoctor's own PID and those of every process above it (the shell, the terminal, the session)."""
    pids = {os.getpid()}
    with suppress(psutil.Error):
        pids |= {p.pid for p in psutil.Process().parents()}
    return frozenset(pids)


def describe(pid: int) -> ProcessDetails:
    try:
        return _details(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return ProcessDetails(pid, False)
    except psutil.AccessDenied:
        return ProcessDetails(pid, True)


def _details(p: psutil.Process) -> ProcessDetails:
    with p.oneshot():
        if p.status() == psutil.STATUS_ZOMBIE:
            return ProcessDetails(p.pid, False)
        uid = p.uids().real if hasattr(p, "uids") else None
        try:
            user = p.username()
        except (KeyError, psutil.Error):  # a UID with no passwd entry (containers)
            user = str(uid) if uid is not None else None
        name = p.name()
        try:
            cmdline = tuple(p.cmdline())
        except psutil.AccessDenied:
            cmdline = ()
        started = p.create_time()
    owned = uid is not None and uid == current_uid()
    return ProcessDetails(p.pid, True, user, uid, name, cmdline, owned, started)


def stop(listed: ProcessDetails, timeout_s: float = 10.0, force: bool = False) -> StopResult:
    """SIGTERM, wait up to `timeout_s`; SIGKILL only with `force`.

    LISTED is the process as it was shown to the user; it is looked at again right before the
    signal, and anything else now behind its PID (another user's, another program) is not touched.
    """
    pid = listed.pid
    try:
        p = psutil.Process(pid)
        now = _details(p)
    except psutil.NoSuchProcess:
        return StopResult(pid, True, None, f"process {pid} is not running")
    except psutil.AccessDenied:
        return StopResult(pid, False, None, f"not allowed to look at {pid}: not touched")
    refusal = _refusal(listed, now)
    if refusal is not None:
        return StopResult(pid, not now.visible, None, refusal)
    try:
        return _terminate(p, now, timeout_s, force)
    except psutil.NoSuchProcess:  # it exited, or (psutil checks) its PID was reused, right before the signal
        return StopResult(pid, True, None, f"process {pid} ({listed.name}) exited before the signal")
    except psutil.AccessDenied:
        return StopResult(pid, False, None, f"not allowed to signal {pid} ({now.name})")


def _refusal(listed: ProcessDetails, now: ProcessDetails) -> str | None:
    """Why the process now behind LISTED's PID must not be signalled; None when it may be."""
    pid = listed.pid
    if not now.visible:
        return f"process {pid} is not running"
    if listed.start_time is None:
        return f"PID {pid}: cannot tell whether it is still the process listed: not touched"
    if listed.start_time != now.start_time:
        return (
            f"PID {pid} now belongs to another process ({now.name}): {listed.name} exited after it was listed; "
            "not touched"
        )
    if not listed.same_process(now):
        return f"process {pid} runs another command line than the one listed: not touched"
    if not now.owned_by_current_user:
        return f"process {pid} belongs to {now.user or 'another user'}: not touched"
    if pid in lineage():
        return f"process {pid} is otdoctor itself or runs it: not touched"
    return None


def _terminate(p: psutil.Process, details: ProcessDetails, timeout_s: float, force: bool) -> StopResult:
    pid, name = details.pid, details.name
    p.terminate()  # psutil compares the start time once more, just before kill(2)
    if _wait_exit(p, timeout_s):
        return StopResult(pid, True, "SIGTERM", f"stopped {pid} ({name}) with SIGTERM")
    if not force:
        return StopResult(
            pid, False, "SIGTERM", f"{pid} ({name}) still runs {timeout_s:.0f} s after SIGTERM; `--force` sends SIGKILL"
        )
    p.kill()
    if _wait_exit(p, timeout_s):
        return StopResult(pid, True, "SIGKILL", f"killed {pid} ({name}) with SIGKILL after SIGTERM was ignored")
    return StopResult(pid, False, "SIGKILL", f"{pid} ({name}) did not exit even after SIGKILL")


def _wait_exit(p: psutil.Process, timeout_s: float) -> bool:
    """Exited, or a zombie: its GPU memory is already freed, only its parent has not reaped it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if p.status() == psutil.STATUS_ZOMBIE:  # reaping it is its parent's business
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
