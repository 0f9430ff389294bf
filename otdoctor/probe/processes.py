"""Processes on this machine: who owns a PID, what it runs, and stopping one (psutil).

`describe(pid)` replaces `ps -o user=,comm=,args= -p PID`; `stop(pid)` replaces `kill PID`, then
`kill -9 PID` only when asked. Only processes of the current user are ever signalled: the check
for that is here, next to the signal, so no caller can forget it.
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


def describe(pid: int) -> ProcessDetails:
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            if p.status() == psutil.STATUS_ZOMBIE:
                return ProcessDetails(pid, False)
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
    except psutil.NoSuchProcess:
        return ProcessDetails(pid, False)
    except psutil.AccessDenied:
        return ProcessDetails(pid, True)
    owned = uid is not None and uid == current_uid()
    return ProcessDetails(pid, True, user, uid, name, cmdline, owned)


def stop(pid: int, timeout_s: float = 10.0, force: bool = False) -> StopResult:
    """SIGTERM, wait up to `timeout_s`; SIGKILL only with `force`. Never another user's process."""
    details = describe(pid)
    if not details.visible:
        return StopResult(pid, True, None, f"process {pid} is not running")
    if not details.owned_by_current_user:
        return StopResult(pid, False, None, f"process {pid} belongs to {details.user or 'another user'}: not touched")
    try:
        p = psutil.Process(pid)
        p.terminate()
        if _wait_exit(p, timeout_s):
            return StopResult(pid, True, "SIGTERM", f"stopped {pid} ({details.name}) with SIGTERM")
        if not force:
            return StopResult(
                pid,
                False,
                "SIGTERM",
                f"{pid} ({details.name}) still runs {timeout_s:.0f} s after SIGTERM; `--force` sends SIGKILL",
            )
        p.kill()
        if _wait_exit(p, timeout_s):
            return StopResult(
                pid, True, "SIGKILL", f"killed {pid} ({details.name}) with SIGKILL after SIGTERM was ignored"
            )
        return StopResult(pid, False, "SIGKILL", f"{pid} ({details.name}) did not exit even after SIGKILL")
    except psutil.NoSuchProcess:
        return StopResult(pid, True, "SIGTERM", f"stopped {pid} ({details.name})")
    except psutil.AccessDenied:
        return StopResult(pid, False, None, f"not allowed to signal {pid} ({details.name})")


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
