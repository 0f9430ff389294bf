"""The probe's child processes and GPU memory readings, on real processes and replayed NVML snapshots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from otdoctor.probe.child import Child
from otdoctor.probe.nvml import MemorySampler, gpu_name_and_driver
from otdoctor.probe.processes import pid_alive, process_tree
from otdoctor.smoke.meter import VramPoller
from tests.support import NVML_DATA

GIB = 1024**3


def _snapshot(tmp_path: Path, used: int, procs: list[tuple[int, int]]) -> Path:
    """h100-idle with `used` bytes in use and these local processes holding memory."""
    snap: dict[str, Any] = json.loads((NVML_DATA / "h100-idle.json").read_text())
    dev = snap["devices"][0]
    v2 = dev["nvmlDeviceGetMemoryInfo(version=33554472)"]["value"]["fields"]
    dev["nvmlDeviceGetMemoryInfo"] = {
        "value": {
            "__struct__": "c_nvmlMemory_t",
            "fields": {"total": v2["total"], "free": v2["total"] - used, "used": used},
        }
    }
    dev["nvmlDeviceGetComputeRunningProcesses"]["value"] = [
        {"__object__": {"pid": pid, "usedGpuMemory": mem, "gpuInstanceId": 0, "computeInstanceId": 0, "_local": True}}
        for pid, mem in procs
    ]
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snap))
    return path


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_pid_alive_sees_running_exited_and_zombie_processes():
    assert pid_alive(os.getpid())
    p = _sleeper()
    assert pid_alive(p.pid)
    p.kill()
    deadline = time.monotonic() + 10
    while pid_alive(p.pid) and time.monotonic() < deadline:  # a zombie until reaped: not alive
        time.sleep(0.05)
    assert not pid_alive(p.pid)
    p.wait()
    assert not pid_alive(p.pid)


def test_child_streams_output_and_stops_its_whole_group():
    seen: list[str] = []
    lock = threading.Lock()

    def on_output(text: str, _t: float) -> None:
        with lock:
            seen.append(text)

    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('grandchild', p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = Child([sys.executable, "-c", script], os.environ, None, on_output)
    deadline = time.monotonic() + 20
    while "grandchild" not in "".join(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int("".join(seen).split()[1])
    assert grandchild in process_tree(child.pid)
    assert child.poll() is None
    child.stop(grace_s=5)
    assert child.stopped_by_us
    assert child.poll() is not None
    deadline = time.monotonic() + 10
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild)


def test_child_that_ends_by_itself_gives_its_exit_code():
    out: list[str] = []
    child = Child(
        [sys.executable, "-c", "print('bye'); raise SystemExit(3)"], os.environ, None, lambda t, _: out.append(t)
    )
    assert child.wait(20) == 3
    assert "".join(out) == "bye\n"
    assert child.stop() == 3 and not child.stopped_by_us


def test_gpu_name_and_driver_from_a_snapshot(tmp_path):
    env = {"OTDOCTOR_NVML_SNAPSHOT": str(NVML_DATA / "h100-idle.json")}
    assert gpu_name_and_driver(env) == ("NVIDIA H100 80GB HBM3", "580.159.04")
    assert gpu_name_and_driver({"OTDOCTOR_NVML_SNAPSHOT": str(NVML_DATA / "no-gpu.json")}) == (None, None)
    assert gpu_name_and_driver({"OTDOCTOR_NVML_SNAPSHOT": str(tmp_path / "missing.json")}) == (None, None)


def test_memory_sampler_reads_the_gpu_and_a_process_tree(tmp_path):
    p = _sleeper()
    try:
        sampler = MemorySampler({"OTDOCTOR_NVML_SNAPSHOT": str(_snapshot(tmp_path, 3 * GIB, [(p.pid, 2 * GIB)]))})
        assert sampler.device_used_bytes() == 3 * GIB
        assert sampler.processes_used_bytes({p.pid}) == 2 * GIB
        assert sampler.processes_used_bytes({os.getpid()}) is None
        sampler.close()
    finally:
        p.kill()
        p.wait()


def test_vram_poller_reports_the_training_process_peak(tmp_path, monkeypatch):
    p = _sleeper()
    try:
        monkeypatch.setenv("OTDOCTOR_NVML_SNAPSHOT", str(_snapshot(tmp_path, 3 * GIB, [(p.pid, 2 * GIB)])))
        poller = VramPoller(p.pid, interval_s=0.05)
        time.sleep(0.5)
        assert poller.stop() == (2 * GIB, "NVML, the training process")
    finally:
        p.kill()
        p.wait()


def test_vram_poller_without_nvml_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("OTDOCTOR_NVML_SNAPSHOT", str(tmp_path / "missing.json"))
    peak, source = VramPoller(os.getpid()).stop()
    assert peak is None
    assert source.startswith("NVML unavailable (SnapshotError: NVML snapshot ")
    assert "cannot be read: no such file" in source
