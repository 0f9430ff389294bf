"""A long child process we watch while it runs and stop cleanly (a training run), and what
otdoctor does when it is itself asked to stop.

Started by `stream.popen_merged`, as `stream_command` (pip, git) is, in its own process group, so
Ctrl-C in the terminal reaches otdoctor, which decides; the child is told to die with otdoctor on
Linux (PR_SET_PDEATHSIG), and is stopped like a user would stop OneTrainer: SIGINT to the whole
group (train.py catches KeyboardInterrupt and returns), then SIGTERM, then SIGKILL if it ignores
both. Output is read raw, in chunks, because tqdm redraws with `\\r` and never ends a line.

`terminate_as_interrupt` makes SIGTERM (`kill PID`, systemd, a job scheduler) and SIGHUP (the
terminal closed) unwind otdoctor as Ctrl-C does, so every cleanup runs: child groups stopped and
waited for, state files left resumable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from otdoctor.probe.stream import popen_merged, stop_group

_SIGNAL_POLL_S = 0.25  # the longest one wait blocks the main thread (see Child.wait)


class Child:
    """A started child process whose merged stdout/stderr arrives as (text, monotonic time)."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None, on_output: Callable[[str, float], None]
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.proc = popen_merged(self.argv, env, cwd, own_group=True)
        self.started = time.monotonic()
        self._on_output = on_output
        self.stopped_by_us = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            self._on_output(data.decode("utf-8", errors="replace"), time.monotonic())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout_s: float | None = None) -> int | None:
        # In short waits: a Ctrl-C the kernel hands to the reader thread is raised here only when a
        # wait returns, and an unbounded waitpid would hold it until the child exits.
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = _SIGNAL_POLL_S if end is None else min(_SIGNAL_POLL_S, end - time.monotonic())
            try:
                rc = self.proc.wait(timeout=max(0.0, left))
                break
            except subprocess.TimeoutExpired:
                if end is not None and time.monotonic() >= end:
                    return None
        self._reader.join(timeout=5)
        return rc

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGINT to the group, then SIGTERM, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            self.stopped_by_us = True
        # Whatever the child started in its group (dataloader workers) goes too.
        rc = stop_group(self.proc, ((signal.SIGINT, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)))
        self._reader.join(timeout=5)
        return rc


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (every cleanup runs) and names the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # TERM/HUP signals received since the outermost terminate_as_interrupt


def stop_signal() -> int | None:
    """The SIGTERM or SIGHUP that stopped otdoctor, if one did."""
    return _received[0] if _received else None


def _raise_stopped(signum: int, frame: object) -> None:  # noqa: ARG001
    _received.append(signum)
    if len(_received) == 1:  # a second one must not cut short the cleanup the first one started
        raise Stopped(signum)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt (`Stopped`) so the cleanup in `finally` blocks runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[int, object] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with suppress(ValueError, OSError):
            old[sig] = signal.signal(sig, _raise_stopped)
    if any(h is not _raise_stopped for h in old.values()):
        _received.clear()  # the outermost one: a new command starts
    try:
        yield
    finally:
        for signum, h in old.items():
            signal.signal(signum, h)  # type: ignore[arg-type]
