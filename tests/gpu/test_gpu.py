"""GPU checks, `otdoctor gpu` and the gpu.vram fix against replayed NVML snapshots.

NVML is the only fake: tests/data/nvml/*.json hold pynvml's answers (see scripts/build_nvml_fixtures.py);
processes are real children of the test whose real PIDs the snapshot reports, so user, name,
command line and the stop path run for real. Every child is stopped at teardown.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pynvml
import pytest

from otdoctor.engine.check import Context, Options
from otdoctor.probe import Probe
from otdoctor.probe.nvml import read_gpu, read_nvml
from otdoctor.probe.nvml_snapshot import FakeNvml, RecordingNvml
from tests.support import NVML_DATA, REPO
from tests.support.factory import build_wheel, make_onetrainer, make_venv, pip_install, pyenv_python
from tests.support.nvml_snapshots import GIB, load, put_processes, write

DATA = NVML_DATA


def sleeper(marker: str) -> list[str]:
    return [sys.executable, "-c", "import sys, time; time.sleep(120)", marker, "--listen", "0.0.0.0"]


def nobody_sleeper() -> list[str]:
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "sleep", "120"]


def ctx_for(snapshot: Path, **extra: Any) -> Context:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_", "CUDA_"))}
    env["OTDOCTOR_NVML_SNAPSHOT"] = str(snapshot)
    return Context(Probe(env=env), Options(extra=dict(extra)))


def check_json(run_cli, snapshot: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    res = run_cli(
        "check",
        "--only",
        "gpu",
        "--format",
        "json",
        *args,
        env={"OTDOCTOR_NVML_SNAPSHOT": str(snapshot), **(env or {})},
    )
    assert res.stdout.strip(), res.stderr
    report = json.loads(res.stdout)
    return res.returncode, {c["id"]: c for c in report["checks"]}


# The fake has pynvml's shapes --------------------------------------------------------------------
def test_fake_nvml_answers_with_pynvml_types():
    nvml = FakeNvml(load("h100-idle"))
    nvml.nvmlInit()
    h = nvml.nvmlDeviceGetHandleByIndex(0)
    mem = nvml.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)
    assert isinstance(mem, pynvml.c_nvmlMemory_v2_t)
    assert mem.total == 81559 * 1024 * 1024 and mem.total == mem.free + mem.used + mem.reserved
    assert nvml.nvmlDeviceGetPciInfo(h).busId == "00000000:18:00.0"  # pynvml structs decode char arrays
    assert nvml.nvmlDeviceGetCudaComputeCapability(h) == (9, 0)
    with pytest.raises(pynvml.NVMLError_FunctionNotFound):
        nvml.nvmlDeviceGetFanSpeed(h)  # not in the snapshot: as an older driver would answer

    wsl = FakeNvml(load("wsl-rtx3060"))
    wsl.nvmlInit()
    h = wsl.nvmlDeviceGetHandleByIndex(0)
    (proc,) = wsl.nvmlDeviceGetComputeRunningProcesses(h)
    assert isinstance(proc, pynvml.nvmlFriendlyObject) and proc.usedGpuMemory is None
    with pytest.raises(pynvml.NVMLError_NotSupported):
        wsl.nvmlDeviceGetMemoryInfo(h, version=pynvml.nvmlMemory_v2)

    with pytest.raises(pynvml.NVMLError_LibRmVersionMismatch) as exc:
        FakeNvml(load("driver-mismatch")).nvmlInit()
    assert exc.value.value == pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH


def test_recording_replays_to_the_same_machine():
    """The recorder captures every call the adapter makes: replaying its snapshot gives the same GPUs."""
    for name in ("h100-idle", "rtx4090-desktop", "wsl-rtx3060", "driver-mismatch"):
        rec = RecordingNvml(FakeNvml(load(name)))
        first = read_nvml(rec)
        second = read_nvml(FakeNvml(json.loads(json.dumps(rec.snapshot))))
        assert second == first, name


def test_record_script_on_this_machine_then_replay(tmp_path, run_cli):
    out = tmp_path / "here.json"
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "record_nvml.py"), "-o", str(out), "--note", "ci box"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    snap = json.loads(out.read_text())
    assert snap["recorded"]["description"] == "ci box"
    if snap["system"].get("nvmlInit", {}).get("error") != pynvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        pytest.skip("this machine has an NVIDIA driver")
    code, checks = check_json(run_cli, out)
    assert code == 0 and checks["gpu.driver"]["status"] == "skip"


# otdoctor check ----------------------------------------------------------------------------------
def test_idle_h100_is_healthy(tmp_path, run_cli):
    code, checks = check_json(run_cli, DATA / "h100-idle.json")
    assert code == 0
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert "580.159.04" in checks["gpu.driver"]["summary"] and "CUDA up to 13.0" in checks["gpu.driver"]["summary"]
    assert checks["gpu.vram"]["data"]["total_vram_bytes"] == 81559 * 1024 * 1024


def test_no_gpu_skips_and_require_gpu_fails(run_cli):
    # This machine has no NVIDIA GPU: real pynvml, no snapshot.
    res = run_cli("check", "--only", "gpu")
    assert res.returncode == 0, res.stdout
    assert "no NVIDIA GPU" in res.stdout and "4 skipped" in res.stdout
    res = run_cli("check", "--only", "gpu", "--require-gpu")
    assert res.returncode == 1
    assert "failed" in res.stdout and "--require-gpu" in res.stdout


@pytest.mark.parametrize(
    "name, expect",
    [("driver-mismatch", "sudo reboot"), ("no-driver", "0000:2b:00.0")],
)
def test_broken_driver_fails_with_its_meaning(run_cli, name, expect):
    res = run_cli("check", "--only", "gpu", env={"OTDOCTOR_NVML_SNAPSHOT": str(DATA / f"{name}.json")})
    assert res.returncode == 1
    assert expect in res.stdout
    assert "need gpu.driver" in res.stdout  # the checks behind the driver share one skipped line


def test_nvidia_smi_fallback_when_nvml_cannot_load(tmp_path, run_cli):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    # Output shapes of nvidia-smi 576.02 under WSL (csv,noheader,nounits).
    smi.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  --query-gpu=*) echo '0, NVIDIA GeForce RTX 3060, GPU-7e21f0aa-4c9b-4d3e-8f12-a0b1c2d3e4f5, "
        "00000000:01:00.0, "
        "576.02, 12288, 1650, 10638, 8.6, 7, 5, 47, 24.31, 170.00, 4, 4, 16, 16' ;;\n"
        "  --query-compute-apps=*) echo '51234, [N/A], GPU-7e21f0aa-4c9b-4d3e-8f12-a0b1c2d3e4f5' ;;\n"
        "  *) echo '| NVIDIA-SMI 575.51.02   Driver Version: 576.02   CUDA Version: 12.9 |' ;;\n"
        "esac\n"
    )
    smi.chmod(0o755)
    snap = write(tmp_path, load("no-gpu"))
    code, checks = check_json(run_cli, snap, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    drv = checks["gpu.driver"]
    assert drv["status"] == "ok" and "576.02" in drv["summary"] and "12.9" in drv["summary"]
    assert any("read through" in d for d in drv["details"])
    assert checks["gpu.vram"]["data"]["processes"][0]["used_memory_bytes"] is None


def test_vram_lists_real_holders_with_owner_and_command_line(tmp_path, run_cli, children):
    mine = children(sleeper("comfyui-standin-main.py"))
    theirs = children(nobody_sleeper())
    snap = load("rtx4090-desktop")
    put_processes(snap, "compute", [(mine.pid, "keep")])
    put_processes(snap, "graphics", [(theirs.pid, "keep")])
    code, checks = check_json(run_cli, write(tmp_path, snap))
    vram = checks["gpu.vram"]
    assert code == 0  # gpu.vram is optional: a busy GPU warns the user but is not an unhealthy install
    assert vram["status"] == "fail" and "needs ~8.9 GiB" in vram["summary"]  # the guide's SDXL settings
    procs = {p["pid"]: p for p in vram["data"]["processes"]}
    assert procs[mine.pid]["owned_by_current_user"] and procs[mine.pid]["kind"] == "compute"
    assert "comfyui-standin-main.py" in procs[mine.pid]["cmdline"]
    assert procs[mine.pid]["used_memory_bytes"] == 14540 * 1024 * 1024
    assert procs[theirs.pid]["user"] == "nobody" and not procs[theirs.pid]["owned_by_current_user"]
    assert procs[theirs.pid]["name"] == "sleep" and procs[theirs.pid]["kind"] == "graphics"
    assert any(f"kill {mine.pid}" in c for c in vram["fix"]["commands"])
    assert any(f"ask nobody to stop PID {theirs.pid}" in c for c in vram["fix"]["commands"])
    assert vram["fix"]["automatic"] is True
    # the text report shows the same, with the command line
    res = run_cli("check", "--only", "gpu.vram", env={"OTDOCTOR_NVML_SNAPSHOT": str(tmp_path / "snap.json")})
    assert f"PID {mine.pid} root (you) compute 14.2 GiB on GPU 0" in res.stdout
    assert "comfyui-standin-main.py --listen 0.0.0.0" in res.stdout


def test_wsl_memory_is_unknown_not_zero(tmp_path, run_cli, children):
    p = children(sleeper("wsl-trainer"))
    snap = load("wsl-rtx3060")
    put_processes(snap, "compute", [(p.pid, None)])
    res = run_cli("check", "--only", "gpu.vram", "-v", env={"OTDOCTOR_NVML_SNAPSHOT": str(write(tmp_path, snap))})
    assert f"PID {p.pid} root (you) compute unknown on GPU 0" in res.stdout
    assert "not zero" in res.stdout
    res = run_cli("gpu", "--format", "json", env={"OTDOCTOR_NVML_SNAPSHOT": str(tmp_path / "snap.json")})
    proc = json.loads(res.stdout)["processes"][0]
    assert proc["pid"] == p.pid and proc["used_memory_bytes"] is None and "wsl-trainer" in proc["cmdline"]


def test_container_pids_not_visible_are_explained(run_cli):
    code, checks = check_json(run_cli, DATA / "container-a100.json")
    vram = checks["gpu.vram"]
    assert vram["status"] == "fail"
    assert all(not p["visible"] for p in vram["data"]["processes"])
    assert any("--pid=host" in d for d in vram["details"])
    assert vram["fix"]["automatic"] is False


def test_config_picks_the_plan(tmp_path, run_cli):
    lora = tmp_path / "sd15-lora.json"
    lora.write_text(json.dumps({"model_type": "STABLE_DIFFUSION_15", "training_method": "LORA"}))
    code, checks = check_json(run_cli, DATA / "gtx1080-driver580.json", "--config", str(lora))
    vram = checks["gpu.vram"]
    assert vram["status"] == "ok" and vram["data"]["plan"] == "config"
    assert vram["data"]["need_vram_bytes"] < 8 * GIB  # an 8 GiB GTX 1080 trains an SD 1.5 LoRA
    assert {"weights unet", "activations unet"} <= {c["name"] for c in vram["data"]["components"]}
    full = tmp_path / "sdxl-full.json"
    full.write_text(
        json.dumps(
            {
                "model_type": "STABLE_DIFFUSION_XL_10_BASE",
                "training_method": "FINE_TUNE",
                "optimizer": {"optimizer": "ADAFACTOR", "fused_back_pass": False},
            }
        )
    )
    code, checks = check_json(run_cli, DATA / "rtx4090-desktop.json", "--config", str(full))
    vram = checks["gpu.vram"]
    assert vram["data"]["plan"] == "config" and vram["data"]["need_vram_bytes"] > 24 * GIB  # float32 weights
    assert "in total" in vram["summary"]  # the card itself is too small
    command = vram["fix"]["commands"][0]
    assert "--config-value optimizer.fused_back_pass=true" in command and str(full) in command


def test_cuda_visible_devices(tmp_path, run_cli):
    snap = load("h100-idle")
    second = copy.deepcopy(snap["devices"][0])
    second["nvmlDeviceGetUUID"]["value"] = "GPU-0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    snap["devices"].append(second)
    snap["system"]["nvmlDeviceGetCount"]["value"] = 2
    path = write(tmp_path, snap)
    _, checks = check_json(run_cli, path, env={"CUDA_VISIBLE_DEVICES": "1"})
    assert checks["gpu.devices"]["status"] == "warn" and "PCI_BUS_ID" in checks["gpu.devices"]["summary"]
    _, checks = check_json(run_cli, path, env={"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert checks["gpu.devices"]["status"] == "ok" and checks["gpu.devices"]["data"]["visible"] == [1]
    assert checks["gpu.vram"]["data"]["gpu_index"] == 1
    _, checks = check_json(run_cli, path, env={"CUDA_VISIBLE_DEVICES": "GPU-0a1b,7", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert checks["gpu.devices"]["status"] == "fail" and "'7' matches no GPU" in checks["gpu.devices"]["summary"]


# gpu.cuda-build with real venvs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ot_with_torch(tmp_path_factory):
    """A OneTrainer checkout whose venv has a stand-in torch wheel carrying the real build's version.py.

    One venv per torch version per module: making a venv is the slow part of these tests.
    """
    made: dict[str, Path] = {}

    def get(version: str, cuda: str | None) -> Path:
        if version not in made:
            root = tmp_path_factory.mktemp("ot-" + version.replace("+", "-"))
            ot = make_onetrainer(root / "OneTrainer", git_init=False)
            wheels = root / "wheels"
            build_wheel(
                wheels,
                "torch",
                version,
                modules={
                    "torch/__init__.py": "raise ImportError('stand-in torch: only version.py is real')\n",
                    "torch/version.py": (
                        f"__version__ = {version!r}\ncuda = {cuda!r}\nhip = None\ngit_version = 'stand-in'\n"
                    ),
                },
            )
            make_venv(ot / "venv", pyenv_python("3.11"))
            pip_install(ot / "venv", "torch", find_links=wheels)
            made[version] = ot
        return made[version]

    return get


def test_rtx5090_with_cu126_torch_fails(run_cli, ot_with_torch):
    ot = ot_with_torch("2.7.1+cu126", "12.6")
    code, checks = check_json(run_cli, DATA / "rtx5090-driver575.json", "--ot-dir", str(ot))
    cb = checks["gpu.cuda-build"]
    assert code == 1 and cb["status"] == "fail"
    text = " ".join([cb["summary"], *cb["details"]])
    assert "requirements-cuda-legacy.txt (cu126)" in text  # driver 575 = CUDA 12.9: the launcher picks legacy
    assert "sm_120" in text and "no kernels for the NVIDIA GeForce RTX 5090" in text
    assert "580" in cb["fix"]["summary"]


def test_gtx1080_with_cu130_torch_fails(run_cli, ot_with_torch):
    ot = ot_with_torch("2.12.0+cu130", "13.0")
    code, checks = check_json(run_cli, DATA / "gtx1080-driver580.json", "--ot-dir", str(ot))
    cb = checks["gpu.cuda-build"]
    assert code == 1 and cb["status"] == "fail"
    assert "compute 6.1" in cb["summary"]
    assert "export OT_PLATFORM_REQUIREMENTS=requirements-cuda-legacy.txt" in cb["fix"]["commands"]
    # the same venv on the idle H100 is fine
    code, checks = check_json(run_cli, DATA / "h100-idle.json", "--ot-dir", str(ot))
    assert checks["gpu.cuda-build"]["status"] == "ok", checks["gpu.cuda-build"]


def test_old_driver_for_the_build_fails(run_cli, ot_with_torch):
    ot = ot_with_torch("2.12.0+cu130", "13.0")
    code, checks = check_json(run_cli, DATA / "rtx4090-desktop.json", "--ot-dir", str(ot))  # driver 570 = CUDA 12.8
    cb = checks["gpu.cuda-build"]
    assert cb["status"] == "fail" and "too old" in cb["summary"] and ">= 580.65.06" in cb["summary"]


@pytest.mark.slow
def test_cpu_torch_with_nvidia_gpu_fails(tmp_path, run_cli, torch_venv):
    ot = make_onetrainer(tmp_path / "OneTrainer", git_init=False)
    code, checks = check_json(
        run_cli, DATA / "h100-idle.json", "--ot-dir", str(ot), env={"OT_PYTHON_VENV": str(torch_venv)}
    )
    cb = checks["gpu.cuda-build"]
    assert cb["status"] == "fail" and "CPU-only build" in cb["summary"]
    assert "download.pytorch.org/whl/cu130" in cb["fix"]["commands"][0]


# The fix -----------------------------------------------------------------------------------------
def _desktop_with(tmp_path: Path, compute: list[int], graphics: list[int]) -> Path:
    snap = load("rtx4090-desktop")
    put_processes(snap, "compute", [(pid, "keep") for pid in compute])
    put_processes(snap, "graphics", [(pid, "keep") for pid in graphics])
    return write(tmp_path, snap)


def test_fix_stops_own_process_and_never_another_users(tmp_path, children):
    from checks.gpu import Vram

    mine = children(sleeper("forgotten-comfyui"))
    theirs = children(nobody_sleeper())
    ctx = ctx_for(_desktop_with(tmp_path, [mine.pid], [theirs.pid]))
    check = Vram()
    assert check.diagnose(ctx).status.value == "fail"

    plan = check.fix(ctx, confirm=lambda q: pytest.fail("a dry run asks nothing"), dry_run=True)
    assert not plan.applied and plan.commands == (f"kill {mine.pid}",) and mine.poll() is None

    questions: list[str] = []
    out = check.fix(ctx, confirm=lambda q: questions.append(q) or True)
    assert out.applied
    assert len(questions) == 1 and str(mine.pid) in questions[0] and "forgotten-comfyui" in questions[0]
    assert mine.wait(timeout=10) == -signal.SIGTERM
    assert theirs.poll() is None, "another user's process must never be touched"
    assert "belongs to nobody" in plan.message and "ask nobody" in plan.message
    assert "nobody" not in out.message  # the plan said it; the outcome says what was done
    again = check.diagnose(ctx)  # the driver gave the 14.2 GiB back
    assert again.status.value == "ok", again.summary


def test_otdoctor_fix_gpu_vram_through_the_cli(tmp_path, run_cli, children):
    mine = children(sleeper("forgotten-comfyui"))
    theirs = children(nobody_sleeper())
    env = {"OTDOCTOR_NVML_SNAPSHOT": str(_desktop_with(tmp_path, [mine.pid], [theirs.pid]))}
    res = run_cli("fix", "gpu.vram", "--dry-run", env=env)
    assert res.returncode == 0 and f"kill {mine.pid}" in res.stdout and mine.poll() is None
    res = run_cli("fix", "gpu.vram", "--yes", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert mine.wait(timeout=10) == -signal.SIGTERM and theirs.poll() is None
    assert "ask nobody" in res.stdout and "21.8 GiB free" in res.stdout  # re-checked after the fix


def test_fix_asks_per_process_and_declining_keeps_it(tmp_path, children):
    from checks.gpu import Vram

    a = children(sleeper("first"))
    b = children(sleeper("second"))
    snap = load("rtx4090-desktop")
    put_processes(snap, "compute", [(a.pid, "keep"), (b.pid, 2 * GIB)])
    ctx = ctx_for(write(tmp_path, snap))
    answers = iter([False, True])  # largest first
    out = Vram().fix(ctx, confirm=lambda q: next(answers))
    assert a.poll() is None and b.wait(timeout=10) == -signal.SIGTERM
    assert "declined" in out.message


def test_fix_sigkill_only_with_force(tmp_path, children):
    from checks.gpu import Vram

    stubborn_code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    p = children([sys.executable, "-c", stubborn_code, "stubborn-trainer"], ready_line=True)
    snap = _desktop_with(tmp_path, [p.pid], [])
    out = Vram().fix(ctx_for(snap, stop_timeout_s=0.5), confirm=lambda q: True)
    assert not out.applied and "--force" in out.message and p.poll() is None
    out = Vram().fix(ctx_for(snap, stop_timeout_s=0.5, force=True), confirm=lambda q: True)
    assert out.applied and "SIGKILL" in out.message
    assert p.wait(timeout=10) == -signal.SIGKILL


# otdoctor gpu ------------------------------------------------------------------------------------
def test_gpu_command_table_and_json(tmp_path, run_cli, children):
    mine = children(sleeper("table-demo"))
    path = _desktop_with(tmp_path, [mine.pid], [])
    res = run_cli("gpu", env={"OTDOCTOR_NVML_SNAPSHOT": str(path)})
    assert res.returncode == 0, res.stderr
    assert "NVIDIA GeForce RTX 4090" in res.stdout and str(mine.pid) in res.stdout and "table-demo" in res.stdout
    assert "root (you)" in res.stdout
    data = json.loads(run_cli("gpu", "--format", "json", env={"OTDOCTOR_NVML_SNAPSHOT": str(path)}).stdout)
    assert data["driver_version"] == "570.133.07" and data["devices"][0]["compute_capability"] == "8.9"
    top = data["processes"][0]
    assert top["pid"] == mine.pid and top["user"] == "root" and top["used_memory_bytes"] == 14540 * 1024 * 1024
    res = run_cli("gpu")  # this machine: no NVIDIA GPU
    assert res.returncode == 1 and "No usable NVIDIA GPU" in res.stdout


def test_bad_snapshot_path_is_one_line(run_cli, tmp_path):
    res = run_cli("gpu", env={"OTDOCTOR_NVML_SNAPSHOT": str(tmp_path / "missing.json")})
    assert res.returncode == 2 and "Traceback" not in res.stderr and "no such file" in res.stderr


def test_read_gpu_without_snapshot_reports_this_machine():
    info = read_gpu({"PATH": os.environ.get("PATH", "")}, lambda argv: None, lambda name: None)  # type: ignore[arg-type,return-value]
    assert info.source == "none" and info.problem is not None and info.problem.kind == "library-not-found"


def test_replayed_pids_are_never_looked_up_here(tmp_path, run_cli, children):
    """A snapshot from another machine may name a PID that exists here: it must stay untouched."""
    bystander = children(sleeper("bystander"))
    snap = load("rtx4090-desktop")
    snap["devices"][0]["nvmlDeviceGetComputeRunningProcesses"]["value"][0]["__object__"]["pid"] = bystander.pid
    path = write(tmp_path, snap)
    code, checks = check_json(run_cli, path)
    row = next(p for p in checks["gpu.vram"]["data"]["processes"] if p["pid"] == bystander.pid)
    assert row["visible"] is False and row["cmdline"] == []
    assert checks["gpu.vram"]["fix"]["automatic"] is False
    res = run_cli("fix", "gpu.vram", "--yes", env={"OTDOCTOR_NVML_SNAPSHOT": str(path)})
    assert bystander.poll() is None, res.stdout


def test_nvidia_pci_devices_reads_sysfs(tmp_path):
    from otdoctor.probe.nvml import nvidia_pci_devices

    devices = tmp_path / "bus" / "pci" / "devices"
    for name, vendor, klass in (
        ("0000:00:02.0", "0x8086", "0x030000"),
        ("0000:01:00.0", "0x10de", "0x030000"),
        ("0000:01:00.1", "0x10de", "0x040300"),
    ):  # Intel iGPU, NVIDIA GPU, its HDMI audio
        (devices / name).mkdir(parents=True)
        (devices / name / "vendor").write_text(vendor + "\n")
        (devices / name / "class").write_text(klass + "\n")
    assert nvidia_pci_devices(tmp_path) == ("0000:01:00.0",)


def test_busy_hot_gpu_with_ecc_errors_warns(tmp_path):
    from checks.gpu import GpuDevices

    snap = load("h100-idle")
    dev = snap["devices"][0]
    dev["nvmlDeviceGetCurrentClocksEventReasons"]["value"] = 0x40 | 0x4  # HW thermal slowdown + SW power cap
    dev["nvmlDeviceGetUtilizationRates"]["value"]["fields"]["gpu"] = 98
    dev["nvmlDeviceGetCurrPcieLinkGeneration"]["value"] = 3
    dev["nvmlDeviceGetTotalEccErrors(1,0)"]["value"] = 3
    result = GpuDevices().diagnose(ctx_for(write(tmp_path, snap)))
    text = " ".join([result.summary, *result.details])
    assert result.status.value == "warn"
    assert "too hot" in text and "PCIe gen3 of gen5 while busy" in text and "3 uncorrected ECC" in text
    assert "power cap" not in text  # a busy GPU at its power limit is normal, not news

    # the same GPU idle at gen1 is fine: GPUs lower the link generation to save power
    idle = load("h100-idle")
    idle["devices"][0]["nvmlDeviceGetCurrPcieLinkGeneration"]["value"] = 1
    assert GpuDevices().diagnose(ctx_for(write(tmp_path, idle, "idle.json"))).status.value == "ok"


def test_unreadable_snapshot_is_one_line_error(tmp_path, run_cli):
    """A folder or a JSON list as the snapshot: a one-line usage error, not an internal error."""
    (tmp_path / "list.json").write_text("[1, 2]")
    for bad, expect in ((tmp_path, "Is a directory"), (tmp_path / "list.json", "not an otdoctor NVML snapshot")):
        res = run_cli("gpu", env={"OTDOCTOR_NVML_SNAPSHOT": str(bad)})
        assert res.returncode == 2, res.stderr
        assert expect in res.stderr
        assert "internal error" not in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
