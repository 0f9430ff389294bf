"""`otdoctor install` stopped by SIGTERM or SIGHUP in the pip phase, and a second otdoctor refused
while the first works in the venv (issue 12): real processes, a real local index that hangs."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.install.test_install import _assert_installed, _digest_state, _wait_for_log
from tests.support.factory import otdoctor_exe
from tests.support.installkit import bare_for_http, pip_env, serve, upstream, wheelhouse


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return wheelhouse(tmp_path_factory.mktemp("wheels"))


def _alive(procs: list[psutil.Process]) -> list[str]:
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())}")
        except psutil.NoSuchProcess:
            continue
    return left


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, said", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_stopped_in_the_pip_phase_leaves_no_pip_and_resumes(sig, code, said, base_env, tmp_path, wheels):
    served = tmp_path / "served"
    served.mkdir()
    bare_for_http(upstream(tmp_path / "upstream"), served / "OneTrainer.git")
    os.symlink(wheels, served / "wheels")
    server = serve(served)
    target = tmp_path / "ot"
    env = {**base_env, **pip_env(f"{server.url}/wheels/")}
    argv = [otdoctor_exe(), "install", "--dir", str(target), "--repo-url", f"{server.url}/OneTrainer.git", "--yes"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    children: list[psutil.Process] = []
    try:
        _wait_for_log(target / "otdoctor-install.log", "--- phase pip", proc)
        server.delay_s = 30  # from now on pip's requests hang: the install sits in the pip phase
        while not server.requests.empty():
            server.requests.get()
        server.wait_for("/wheels/")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("pip" in " ".join(c.cmdline()) for c in children), [c.cmdline() for c in children]

        # A second otdoctor for the same venv is refused at once, naming the first.
        busy = f"another otdoctor is installing into {target / 'venv'} (pid {proc.pid})"
        for second in (argv, [otdoctor_exe(), "fix", "--ot-dir", str(target), "--yes"]):
            res = subprocess.run(second, env=env, capture_output=True, text=True, timeout=120)
            assert res.returncode == 1 and busy in res.stderr, res.stdout + res.stderr
            assert "Traceback" not in res.stderr

        os.kill(proc.pid, sig)  # otdoctor alone, as `kill PID` (or a closed terminal) does
        _, err = proc.communicate(timeout=60)
    finally:
        server.release.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for c in children:
            if c.is_running():
                c.kill()
    assert proc.returncode == code, err
    assert f"otdoctor: stopped by {said}" in err.decode() and "run the same command again to resume" in err.decode()
    assert b"Traceback" not in err and b"internal error" not in err
    assert _alive(children) == [], "pip (or a child of it) outlived otdoctor"
    print(f"{said}: exit {proc.returncode}, {len(children)} child process(es) before, {len(_alive(children))} left")
    assert '"pip"' not in _digest_state(target)  # the state never claims the phase that was cut short

    if sig == signal.SIGHUP:  # the resume is the same after either signal: run it once
        return
    server.delay_s = 0
    server.release.clear()
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    assert "reusing" in res.stdout and "pip upgraded" in res.stdout  # resumed: the venv kept, pip finished now
    _assert_installed(target, tmp_path / "upstream")
    server.shutdown()
