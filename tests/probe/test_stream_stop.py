"""SIGTERM and SIGHUP stop otdoctor as Ctrl-C does: the streamed child's whole process group is
stopped and waited for before otdoctor exits, even a grandchild that ignores SIGINT and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from tests.support import REPO

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from otdoctor.probe.child import stop_signal, terminate_as_interrupt
    from otdoctor.probe.stream import stream_command

    stubborn = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    )
    child = (
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); "
        "print('ready', flush=True); time.sleep(120)" % stubborn
    )
    try:
        with terminate_as_interrupt():
            stream_command([sys.executable, "-c", child], os.environ, on_line=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("stopped by", stop_signal(), flush=True)
        sys.exit(1)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_takes_the_whole_child_group_down_first(sig):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True
    )
    descendants: list[psutil.Process] = []
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) == 2  # the streamed child and its grandchild
        os.kill(proc.pid, sig)  # otdoctor alone, as `kill PID` or a closing terminal does
        out, _ = proc.communicate(timeout=60)
        assert f"stopped by {int(sig)}" in out
        left = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == [], "a child of the stopped command outlived it"
    finally:
        for p in [*descendants, psutil.Process(proc.pid)] if proc.poll() is None else descendants:
            if p.is_running():
                p.kill()
        proc.wait(timeout=10)
