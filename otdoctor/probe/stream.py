"""Long commands whose output is streamed line by line (pip, git, pyenv install) and kept in a log.

`probe.run` captures output and returns it at the end; installing OneTrainer's requirements takes
minutes, so the user must see pip work while it happens, and the whole output must survive in a
log file for the failure report and for `otdoctor explain`.

Every streamed child leads its own process group, so otdoctor, whatever stops it (Ctrl-C, SIGTERM,
SIGHUP: all arrive as KeyboardInterrupt, see `child.terminate_as_interrupt`), stops the whole group
and waits for it before it exits: no pip keeps writing into a venv after otdoctor is gone, and a
run started again at once never meets a second pip in the same venv.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from otdoctor.redact import redact


@dataclass(frozen=True)
class StreamResult:
    argv: tuple[str, ...]
    returncode: int | None  # None: could not start
    tail: tuple[str, ...]  # the last lines of output, for a failure message
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def popen_merged(
    args: Sequence[str], env: Mapping[str, str], cwd: Path | None, own_group: bool = False
) -> subprocess.Popen[bytes]:
    """Start ARGS with stdin closed and stderr merged into a stdout pipe: every streamed child starts here.

    `own_group`: a new session, so Ctrl-C reaches otdoctor alone (which then stops the group with
    `stop_group`), and on Linux the child dies with otdoctor (PR_SET_PDEATHSIG), even a SIGKILLed
    one; otherwise the child shares otdoctor's process group.
    """
    return subprocess.Popen(
        args,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=own_group,
        preexec_fn=_pdeathsig if own_group and sys.platform.startswith("linux") else None,
    )


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the parent
    except Exception:
        pass


# Stopping a child's group: the gentlest signal first (pip rolls back a half-done install on
# SIGINT, git removes a half-made clone), a firmer one when it is ignored.
STOP_STEPS: tuple[tuple[int, float], ...] = ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


def stop_group(proc: subprocess.Popen[bytes], steps: Sequence[tuple[int, float]] = STOP_STEPS) -> int:
    """`kill -INT -PGID`, then firmer signals, until PROC (the group's leader) exits; then SIGKILL for
    whatever else of the group is left (build workers, dataloaders); the exit code.

    PROC is reaped only after the last signal: while its zombie exists, its PID (the group's id)
    cannot be handed to another process, so no signal can reach a stranger.
    """
    for sig, wait_s in steps:
        if _exited(proc, 0.0):
            break
        _signal_group(proc.pid, sig)
        if _exited(proc, wait_s):
            break
    _signal_group(proc.pid, signal.SIGKILL)
    return proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exited(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Has PROC exited? Looks without reaping it (waitid WNOWAIT), so its PID stays reserved."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.returncode is not None:
            return True
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # reaped already (Popen.poll in another thread)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stream_command(
    argv: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    log: IO[str] | None = None,
    on_line: Callable[[str], None] | None = None,
    cwd: Path | None = None,
    tail_lines: int = 20,
) -> StreamResult:
    """Run ARGV with stdout+stderr merged; every line goes to `log` (flushed) and `on_line`.

    On Ctrl-C, SIGTERM or SIGHUP (a KeyboardInterrupt here) the child's whole process group is
    stopped and waited for, then the KeyboardInterrupt goes on, so the caller's state file never
    claims a phase that did not finish.
    """
    args = tuple(str(a) for a in argv)
    start = time.perf_counter()
    if log is not None:
        log.write(redact(f"$ {' '.join(args)}") + "\n")
        log.flush()
    try:
        proc = popen_merged(args, env, cwd, own_group=True)
    except OSError as exc:
        msg = redact(f"could not start {args[0]}: {exc.strerror or exc}")
        if log is not None:
            log.write(msg + "\n")
            log.flush()
        return StreamResult(args, None, (msg,), error=msg)
    tail: deque[str] = deque(maxlen=tail_lines)
    assert proc.stdout is not None
    try:
        # pip redraws progress with \r: split on both so the live view shows the latest state.
        buffer = b""
        while True:
            chunk = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            if not chunk:
                break
            buffer += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                _emit(raw, log, on_line, tail)
        if buffer:
            _emit(buffer, log, on_line, tail)
        proc.wait()
    except BaseException:
        _drain(proc, log, tail)  # a child blocked on a full pipe could not act on its signal
        stop_group(proc)
        raise
    if log is not None:
        log.write(f"[exit {proc.returncode}]\n")
        log.flush()
    return StreamResult(args, proc.returncode, tuple(tail), duration_s=time.perf_counter() - start)


def _emit(raw: bytes, log: IO[str] | None, on_line: Callable[[str], None] | None, tail: deque[str]) -> None:
    # Secrets (a token in a git URL, in pip's index URL) never reach the screen or the log.
    line = redact(raw.decode("utf-8", errors="replace").rstrip())
    if not line:
        return
    tail.append(line)
    if log is not None:
        log.write(line + "\n")
        log.flush()
    if on_line is not None:
        on_line(line)


def _drain(proc: subprocess.Popen[bytes], log: IO[str] | None, tail: deque[str]) -> None:
    """Keep reading the child's last words (into the log) in the background while it is stopped."""

    def read() -> None:
        assert proc.stdout is not None
        with suppress(OSError, ValueError):
            for raw in iter(proc.stdout.readline, b""):
                _emit(raw, log, None, tail)

    threading.Thread(target=read, daemon=True).start()
