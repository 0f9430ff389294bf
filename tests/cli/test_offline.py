"""`--offline` opens no network socket at all: not otdoctor, not a process it starts.

Two independent witnesses:
- `strace -f -e trace=socket,connect` over the real console script and every child it starts
  (the venv's Python, git, pip): no AF_INET or AF_INET6 socket may be created;
- a `sitecustomize.py` on PYTHONPATH that makes otdoctor's own process record and refuse every
  `socket.connect` / `getaddrinfo` (in case a library resolves names through a path strace would
  show only as a UNIX socket to a resolver).
A control run of a tiny client under the same witnesses proves they see a connection when one is
made, so a silent witness means something.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.factory import make_onetrainer, make_venv, otdoctor_exe, pyenv_python

SITECUSTOMIZE = """
import os, socket
_log = os.environ["NET_GUARD_LOG"]
def _refuse(what, detail):
    with open(_log, "a") as fh:
        fh.write("%s %s %r\\n" % (os.getpid(), what, detail))
    raise OSError("network refused by the offline test: %s %r" % (what, detail))
_connect = socket.socket.connect
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect", address)
    return _connect(self, address)
def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect_ex", address)
    return socket.socket.connect_ex.__wrapped__(self, address)
connect_ex.__wrapped__ = socket.socket.connect_ex
def getaddrinfo(host, *args, **kw):
    _refuse("getaddrinfo", host)
socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
"""

# Network access is a connect (TCP, or UDP to a DNS server) or a send to an inet address. Creating a
# socket alone is not: pip's vendored urllib3 makes an AF_INET6 socket at import and binds it to ::1
# to learn whether IPv6 works, and nothing leaves the machine.
INET = re.compile(r"(connect|sendto|sendmsg)\(\d+, .*sa_family=AF_INET6?\b")

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


@pytest.fixture
def guard(tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "guard"
    d.mkdir()
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": str(d), "NET_GUARD_LOG": str(tmp_path / "net-guard.log")}


@pytest.fixture
def listener():
    """A real loopback server, so the control's connection has somewhere to go."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def _traced(argv: list[str], env: dict[str, str], cwd: Path, trace: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=socket,connect,sendto,sendmsg,execve", "-o", str(trace), *argv],
        env=env,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_witnesses_see_a_connection_when_one_is_made(tmp_path, base_env, guard, listener):
    client = f"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=5); print('connected')"
    # strace alone: the connection happens and is seen.
    trace = tmp_path / "control.strace"
    proc = _traced([sys.executable, "-c", client], base_env, tmp_path, trace)
    assert proc.stdout.strip() == "connected", proc.stderr
    assert INET.search(trace.read_text()), trace.read_text()[-2000:]
    # The in-process guard: the attempt is written down and refused.
    proc = subprocess.run(
        [sys.executable, "-c", client], env={**base_env, **guard}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "network refused by the offline test" in proc.stderr
    assert "getaddrinfo '127.0.0.1'" in Path(guard["NET_GUARD_LOG"]).read_text()


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> dict[str, Path]:
    """One checkout with a real venv for the module (making a venv takes seconds)."""
    tmp_path = tmp_path_factory.mktemp("offline-machine")
    ot = make_onetrainer(tmp_path / "OneTrainer", python_version="3.11")
    make_venv(ot / "venv", pyenv_python("3.11"))
    config = tmp_path / "train.json"
    config.write_text(
        json.dumps(
            {
                "__version": 11,
                "model_type": "STABLE_DIFFUSION_XL_10_BASE",
                "training_method": "FINE_TUNE",
                "base_model_name": "stabilityai/stable-diffusion-xl-base-1.0",  # a Hugging Face repo id
                "concepts": [],
            }
        )
    )
    return {"ot": ot, "config": config}


@pytest.mark.parametrize(
    "command",
    [
        ["check", "--offline", "--format", "json"],
        ["report", "--offline", "--print"],
    ],
)
def test_offline_opens_no_network_socket(command, tmp_path, base_env, guard, machine, listener):
    env = {
        **base_env,
        **guard,
        # Where network code would go if it ran: a live loopback server, so nothing fails fast.
        "HF_ENDPOINT": f"http://127.0.0.1:{listener}",
        "OTDOCTOR_CIVITAI_URL": f"http://127.0.0.1:{listener}",
        "CIVITAI_TOKEN": "0123456789abcdef0123456789abcdef",
    }
    trace = tmp_path / "otdoctor.strace"
    argv = [otdoctor_exe(), *command, "--ot-dir", str(machine["ot"]), "--config", str(machine["config"])]
    proc = _traced(argv, env, tmp_path, trace)
    assert proc.returncode in (0, 1), proc.stderr
    text = trace.read_text()
    # strace followed the children: the venv's Python and git ran under its eye.
    assert re.search(r'execve\("' + re.escape(str(machine["ot"] / "venv" / "bin" / "python")), text), text[:3000]
    assert re.search(r'execve\("[^"]*/git"', text)
    inet = [line for line in text.splitlines() if INET.search(line)]
    assert inet == [], "\n".join(inet[:20])
    assert not Path(guard["NET_GUARD_LOG"]).exists(), Path(guard["NET_GUARD_LOG"]).read_text()
    if command[0] == "check":
        report = json.loads(proc.stdout)
        assert {c["id"] for c in report["checks"]} >= {"venv.exists", "config.file"}  # the run was real
    else:
        envtext = proc.stdout.split("===== otdoctor-report/environment.txt =====\n", 1)[1]
        assert "HF_HUB_OFFLINE=1" in envtext  # set for every process otdoctor starts, too
        assert "| **otdoctor** | 0.1.0, " in proc.stdout and ", offline |" in proc.stdout


def test_offline_children_are_told_to_stay_offline(tmp_path, base_env, machine):
    """The venv's Python (run by the probe) sees HF_HUB_OFFLINE=1: huggingface_hub in OneTrainer's
    venv, or a smoke run, would not reach out either."""
    spy = machine["ot"] / "venv" / "lib"
    site = next(spy.glob("python3*/site-packages"))
    spy_pth = site / "offline_spy.pth"
    spy_pth.write_text(
        "import os; open(os.path.join(" + repr(str(tmp_path)) + ", 'child-env.txt'), 'a').write("
        "os.environ.get('HF_HUB_OFFLINE', '-') + chr(10))\n"
    )
    try:
        subprocess.run(
            [otdoctor_exe(), "check", "--offline", "--ot-dir", str(machine["ot"])],
            env=base_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        spy_pth.unlink()
    seen = (tmp_path / "child-env.txt").read_text().split()
    assert seen and set(seen) == {"1"}, seen
