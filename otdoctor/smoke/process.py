"""Running a training process we can watch and stop cleanly, and temporary run folders.

The child gets its own process group (so Ctrl-C in the terminal reaches otdoctor, which decides),
is told to die with otdoctor on Linux (PR_SET_PDEATHSIG), and is stopped like a user would stop
OneTrainer: SIGINT to the whole group (train.py catches KeyboardInterrupt and returns), then
SIGTERM, then SIGKILL if it ignores both. Output is read raw, in chunks, because tqdm redraws with
`\\r` and never ends a line.

Temporary run folders live under `<cache>/smoke/tmp/run-<pid>-<random>`: when otdoctor itself is
killed (SIGKILL leaves no chance to clean up), the next smoke run removes folders whose pid is gone.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from otdoctor.probe.files import cache_dir


def _pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the parent
    except Exception:
        pass


class Child:
    """A started child process whose merged stdout/stderr arrives as (text, monotonic time)."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None, on_output: Callable[[str, float], None]
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=str(cwd) if cwd else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None,
        )
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
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(timeout=5)
        return rc

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGINT to the group, then SIGTERM, then SIGKILL; returns the exit code."""
        if self.proc.poll() is None:
            self.stopped_by_us = True
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            if self.proc.poll() is not None:
                break
            self._signal_group(sig)
            if self.wait(wait_s) is not None:
                break
        # Whatever the child started in its group (dataloader workers) goes too.
        self._signal_group(signal.SIGKILL)
        rc = self.proc.wait()
        self._reader.join(timeout=5)
        return rc


# Temporary run folders --------------------------------------------------------------------------
def tmp_root() -> Path:
    return cache_dir() / "smoke" / "tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(root: Path | None = None) -> list[Path]:
    """Remove run folders left by an otdoctor that was killed; returns what was removed."""
    root = root or tmp_root()
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        parts = entry.name.split("-")
        if len(parts) >= 3 and parts[0] == "run" and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextmanager
def run_folder(keep: bool = False) -> Iterator[Path]:
    """A fresh folder for one smoke run, removed on exit (also on Ctrl-C and SIGTERM) unless `keep`."""
    root = tmp_root()
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale(root)
    path = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so the cleanup in `finally` blocks runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
