"""probe.locks between two real processes: the second is refused at once, told who holds the lock
and what it is doing; the lock goes with its holder, however the holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from otdoctor.errors import UserError
from otdoctor.probe.locks import Busy, lock_path, resource_lock
from tests.support import REPO

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from otdoctor.probe.locks import resource_lock
    with resource_lock(Path(sys.argv[1]), "installing into " + sys.argv[1], {"OTDOCTOR_CACHE_DIR": sys.argv[2]}):
        print("holding", flush=True)
        time.sleep(120)
    """
)


def _hold(venv, cache) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(venv), str(cache)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "holding"
    return p


def test_second_holder_is_refused_with_the_first_ones_pid_and_work(tmp_path):
    venv, cache = tmp_path / "ot" / "venv", tmp_path / "cache"
    env = {"OTDOCTOR_CACHE_DIR": str(cache)}
    holder = _hold(venv, cache)
    try:
        with pytest.raises(Busy) as caught, resource_lock(venv, "repairing it", env):
            pytest.fail("the lock is held by another process")
        assert caught.value.message == f"another otdoctor is installing into {venv} (pid {holder.pid})"
        assert caught.value.exit_code == 1
        # The same venv through another spelling of its path is the same lock.
        assert lock_path(tmp_path / "ot" / ".." / "ot" / "venv", env) == lock_path(venv, env)
    finally:
        holder.send_signal(signal.SIGKILL)  # the harshest end: the kernel still drops the lock
        holder.wait()
    with resource_lock(venv, "repairing it", env):
        assert os.path.exists(lock_path(venv, env))


def test_an_unwritable_cache_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with (
        pytest.raises(UserError) as caught,
        resource_lock(tmp_path / "venv", "x", {"OTDOCTOR_CACHE_DIR": str(blocker)}),
    ):
        pass
    assert caught.value.message.startswith("cannot create the lock file") and caught.value.exit_code == 1
