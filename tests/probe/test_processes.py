"""probe.processes on real processes: identity (PID + start time + command line), and the guards
that sit next to the signal."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from otdoctor.probe.processes import describe, lineage, stop
from tests.support import REPO


def _sleeper(*marker: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *marker])


def test_identity_names_one_process():
    p = _sleeper("a")
    try:
        d = describe(p.pid)
        assert d.visible and d.start_time is not None and d.cmdline[-1] == "a"
        assert d.same_process(describe(p.pid))
        assert not d.same_process(dataclasses.replace(d, start_time=d.start_time + 1))
        assert not d.same_process(dataclasses.replace(d, cmdline=(*d.cmdline[:-1], "b")))
    finally:
        p.kill()
        p.wait()


def test_a_changed_command_line_is_not_signalled():
    p = _sleeper("listed")
    try:
        listed = dataclasses.replace(describe(p.pid), cmdline=("something", "else"))
        res = stop(listed, timeout_s=1)
        assert res.signal is None and "another command line" in res.message
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_stop_never_signals_otdoctor_or_the_processes_above_it():
    """A child asked to stop its own parent (as `fix` could be, were the shell running it listed)."""
    code = (
        "import os; from otdoctor.probe.processes import describe, stop; "
        "print(stop(describe(os.getppid()), timeout_s=1).message, flush=True)"
    )
    script = f"{sys.executable} -c '{code}'; echo parent-alive"
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "is otdoctor itself or runs it: not touched" in res.stdout, res.stdout + res.stderr
    assert "parent-alive" in res.stdout and res.returncode == 0
    assert set(lineage()) >= {os.getpid(), os.getppid()}


def test_stop_after_the_process_ended_says_so():
    p = _sleeper()
    listed = describe(p.pid)
    p.kill()
    p.wait()
    res = stop(listed)
    assert res.signal is None and res.stopped and "not running" in res.message
