"""`otdoctor fix gpu.vram` stops only what it may (issue 12): real processes of this user, named like
a browser, a display server or a desktop shell (a renamed copy of `sleep`, or `exec -a`), listed in a
replayed NVML snapshot as holding VRAM. They must survive `fix --yes`; only a plain compute
process is stopped, and only while its PID still names the process that was listed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from otdoctor.engine.check import Context, Options
from otdoctor.gpu.stopping import desktop_kind, judge
from otdoctor.probe import Probe
from otdoctor.probe.processes import ProcessDetails, describe, stop
from tests.support import NVML_DATA
from tests.support.factory import otdoctor_exe

MIB = 1024**2


def renamed_sleep(tmp_path: Path, name: str) -> list[str]:
    """A copy of `sleep` called NAME: `ps` shows NAME, as for the real program."""
    exe = tmp_path / "bin" / name
    exe.parent.mkdir(exist_ok=True)
    shutil.copy2(shutil.which("sleep") or "/bin/sleep", exe)
    return [str(exe), "120"]


def exec_as(name: str) -> list[str]:
    """`exec -a NAME sleep 120`: the first argument says NAME, the binary is sleep."""
    return ["bash", "-c", f"exec -a {name} sleep 120"]


def trainer(marker: str) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(120)", marker]


def snapshot(tmp_path: Path, compute: list[tuple[int, int]], graphics: list[tuple[int, int]] = ()) -> Path:
    """The RTX 4090 desktop, with only these local processes holding memory (pid, bytes)."""
    snap: dict[str, Any] = json.loads((NVML_DATA / "rtx4090-desktop.json").read_text())
    dev = snap["devices"][0]
    for key, entries in (
        ("nvmlDeviceGetComputeRunningProcesses", compute),
        ("nvmlDeviceGetGraphicsRunningProcesses", graphics),
    ):
        dev[key]["value"] = [
            {
                "__object__": {
                    "pid": pid,
                    "usedGpuMemory": used,
                    "gpuInstanceId": 0xFFFFFFFF,
                    "computeInstanceId": 0xFFFFFFFF,
                    "_local": True,
                }
            }
            for pid, used in entries
        ]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snap))
    return path


def ctx_for(path: Path, **extra: Any) -> Context:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_", "CUDA_"))}
    env["OTDOCTOR_NVML_SNAPSHOT"] = str(path)
    return Context(Probe(env=env), Options(extra=dict(extra)))


def wait_running(p: subprocess.Popen, name: str) -> None:
    """Until `exec -a` has happened: the process shows the name it will keep."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        d = describe(p.pid)
        if d.cmdline and Path(d.cmdline[0]).name == name:
            return
        time.sleep(0.01)
    raise TimeoutError(name)


# The table ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, argv0, kind",
    [
        ("Xorg", "/usr/lib/xorg/Xorg", "display server"),
        ("Xwayland", "Xwayland", "display server"),
        ("gnome-shell", "/usr/bin/gnome-shell", "desktop shell"),
        ("kwin_wayland", "kwin_wayland", "desktop shell"),
        ("plasmashell", "plasmashell", "desktop shell"),
        ("firefox-bin", "/usr/lib/firefox/firefox-bin", "web browser"),
        ("Isolated Web Co", "/usr/lib/firefox/firefox", "web browser"),
        ("chrome", "/opt/google/chrome/chrome", "web browser"),
        ("sleep", "firefox", "web browser"),  # exec -a firefox
        ("msedge.exe", "C:\\Program Files\\Microsoft\\Edge\\msedge.exe", "web browser"),
        ("dwm.exe", "C:\\Windows\\System32\\dwm.exe", "desktop shell"),
        ("python", "/home/me/OneTrainer/venv/bin/python", None),
        ("python3.10", "python", None),
        ("comfyui", "main.py", None),
    ],
)
def test_desktop_processes_are_recognised_by_name_or_first_argument(name, argv0, kind):
    label = desktop_kind(ProcessDetails(1, True, "me", 1000, name, (argv0, "--x"), True, 1.0))
    assert (label is None) if kind is None else (kind in str(label)), label


# The fix, end to end ------------------------------------------------------------------------------
def test_fix_yes_stops_the_trainer_and_spares_desktop_browser_and_graphics(tmp_path, run_cli, children):
    xorg = children(renamed_sleep(tmp_path, "Xorg"))
    shell = children(renamed_sleep(tmp_path, "gnome-shell"))
    firefox = children(exec_as("firefox"))
    drawing = children(trainer("viewer-that-draws"))
    stuck = children(trainer("forgotten-train.py"))
    wait_running(firefox, "firefox")
    spared = {xorg.pid: "Xorg", shell.pid: "gnome-shell", firefox.pid: "sleep", drawing.pid: "python"}
    path = snapshot(
        tmp_path,
        compute=[(stuck.pid, 9000 * MIB), (xorg.pid, 300 * MIB), (shell.pid, 200 * MIB), (firefox.pid, 800 * MIB)],
        graphics=[(drawing.pid, 400 * MIB), (xorg.pid, 900 * MIB)],
    )
    env = {"OTDOCTOR_NVML_SNAPSHOT": str(path)}

    dry = run_cli("fix", "gpu.vram", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    out = dry.stdout
    assert f"would stop PID {stuck.pid}" in out and f"      kill {stuck.pid}" in out
    for pid in spared:
        assert f"would stop PID {pid}" not in out and f"kill {pid}" not in out
    assert f"spared: PID {xorg.pid} (Xorg): a display server" in out
    assert f"spared: PID {shell.pid} (gnome-shell): a desktop shell" in out
    assert f"spared: PID {firefox.pid} (sleep): a web browser" in out
    assert f"spared: PID {drawing.pid} (python): a graphics process" in out
    assert all(p.poll() is None for p in (xorg, shell, firefox, drawing, stuck))

    res = run_cli("fix", "--yes", env=env)  # plain `fix --yes`: every fixable finding, no questions
    assert stuck.wait(timeout=15) == -signal.SIGTERM, res.stdout + res.stderr
    time.sleep(0.2)
    survivors = {p.pid: p.poll() for p in (xorg, shell, firefox, drawing)}
    assert all(code is None for code in survivors.values()), (survivors, res.stdout)
    assert f"stopped {stuck.pid}" in res.stdout
    assert f"spared: PID {xorg.pid} (Xorg)" in res.stdout


def test_nothing_stoppable_means_no_question_and_no_signal(tmp_path, run_cli, children):
    xorg = children(renamed_sleep(tmp_path, "Xorg"))
    env = {"OTDOCTOR_NVML_SNAPSHOT": str(snapshot(tmp_path, compute=[(xorg.pid, 20000 * MIB)]))}
    res = run_cli("fix", "gpu.vram", env=env, input="")  # no --yes: any question would read EOF
    assert "nothing holding VRAM here may be stopped by otdoctor" in res.stdout, res.stdout + res.stderr
    assert "?" not in res.stdout.split("nothing holding VRAM", 1)[1].split("\n", 1)[0]
    assert xorg.poll() is None


def test_otdoctors_own_shell_is_never_stopped(tmp_path, base_env, children):
    """A parent of otdoctor listed as a compute process (a notebook kernel running `!otdoctor fix`)."""
    cmd = f'read snap; OTDOCTOR_NVML_SNAPSHOT="$snap" {otdoctor_exe()} fix gpu.vram --yes; echo "exit=$?"'
    shell = children(["bash", "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=base_env)
    path = snapshot(tmp_path, compute=[(shell.pid, 20000 * MIB)])
    out, _ = shell.communicate(f"{path}\n".encode(), timeout=60)
    text = out.decode()
    assert shell.returncode == 0 and "exit=" in text, text  # the shell lived to run its next command
    assert f"spared: PID {shell.pid} (bash): otdoctor itself, or the shell or terminal it runs in" in text


# PID reuse: the identity shown is the identity signalled ------------------------------------------
def _set_next_pid(pid: int) -> bool:
    """Make PID the next one the kernel hands out (Linux: ns_last_pid; root only). False: not allowed."""
    try:
        with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
            fh.write(str(pid - 1))
    except OSError:
        return False
    return True


def start_with_pid(pid: int, argv: list[str], started: Any) -> subprocess.Popen:
    """Start ARGV as process PID (a real PID reuse); skips where the kernel does not allow choosing."""
    for _ in range(100):
        if not _set_next_pid(pid):
            pytest.skip("choosing the next PID needs a writable /proc/sys/kernel/ns_last_pid (root)")
        p = started(argv)
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    raise AssertionError(f"another process kept taking PID {pid}")


def test_a_reused_pid_is_never_signalled(children):
    first = children(trainer("train.py"))
    listed = describe(first.pid)
    first.kill()
    first.wait()
    time.sleep(0.05)  # a later start time, even at the clock's 10 ms resolution
    second = start_with_pid(first.pid, trainer("train.py"), children)  # same PID, same command line
    res = stop(listed, timeout_s=2)
    assert res.signal is None and not res.stopped, res
    assert "now belongs to another process" in res.message
    time.sleep(0.2)
    assert second.poll() is None


def test_fix_skips_a_listed_process_whose_pid_was_reused(tmp_path, children):
    from checks.gpu import Vram

    first = children(trainer("forgotten-train.py"))
    ctx = ctx_for(snapshot(tmp_path, compute=[(first.pid, 20000 * MIB)]))
    plan = Vram().fix(ctx, confirm=lambda q: pytest.fail("a dry run asks nothing"), dry_run=True)
    assert plan.commands == (f"kill {first.pid}",)
    first.kill()  # between the plan and the confirmation, the listed process ends...
    first.wait()
    time.sleep(0.05)
    second = start_with_pid(first.pid, trainer("a-new-job.py"), children)  # ...and its PID is reused
    out = Vram().fix(ctx, confirm=lambda q: True)
    assert not out.applied and f"PID {first.pid} is no longer the process listed" in out.message
    time.sleep(0.2)
    assert second.poll() is None


def test_judge_spares_the_lineage_and_counts_a_pid_once():
    from otdoctor.gpu.reasoning import HolderRow
    from otdoctor.probe.nvml import GpuProcess

    me = describe(os.getpid())
    rows = [HolderRow(GpuProcess(me.pid, kind, 1, 0, "GPU-x"), me) for kind in ("compute", "graphics")]
    (verdict,) = judge(rows, lineage={os.getppid()})
    assert verdict.spared is not None and "graphics" in verdict.spared
    (verdict,) = judge(rows[:1], lineage={me.pid})
    assert verdict.spared == "otdoctor itself, or the shell or terminal it runs in"
    (verdict,) = judge(rows[:1], lineage=set())
    assert verdict.stoppable
