"""A fleet: real Ansible runs the shipped playbook against several inventory hosts, then
`otdoctor merge` compares the reports it brought home.

The hosts are all this machine (`ansible_connection=local`), made different the way rented
machines differ: another OneTrainer checkout per host (`ot_dir` -> $OT_DIR), another GPU and
driver per host (a recorded NVML snapshot each), a venv with real CPU torch on one, none on the
other; one host points at a checkout that does not exist, one at an otdoctor that is not there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import NVML_DATA, REPO
from tests.support.factory import make_onetrainer, make_venv, otdoctor_exe, pyenv_python

FLEET = REPO / "scripts" / "fleet"
NVML = NVML_DATA
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

pytestmark = pytest.mark.skipif(not ANSIBLE_PLAYBOOK.exists(), reason="ansible-core is not installed (test extra)")


@pytest.fixture
def fleet(tmp_path: Path, base_env: dict[str, str], torch_venv: Path) -> dict:
    a = make_onetrainer(tmp_path / "host-a" / "OneTrainer", python_version="3.11")
    b = make_onetrainer(tmp_path / "host-b" / "OneTrainer", python_version="3.11")
    make_venv(b / "venv", pyenv_python("3.11"), with_pip=False)
    hosts = {
        "gpu-h100": {
            "ot_dir": str(a),
            "otdoctor_env": {"OTDOCTOR_NVML_SNAPSHOT": str(NVML / "h100-idle.json"), "OT_PYTHON_VENV": str(torch_venv)},
        },
        "gpu-4090": {"ot_dir": str(b), "otdoctor_env": {"OTDOCTOR_NVML_SNAPSHOT": str(NVML / "rtx4090-desktop.json")}},
        "gpu-broken": {
            "ot_dir": str(tmp_path / "host-c" / "OneTrainer"),  # never installed
            "otdoctor_env": {"OTDOCTOR_NVML_SNAPSHOT": str(NVML / "h100-idle.json")},
        },
        "gpu-no-otdoctor": {"otdoctor_bin": str(tmp_path / "nowhere" / "otdoctor")},
    }
    for h in hosts.values():
        h["ansible_connection"] = "local"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"otdoctor_bin": otdoctor_exe(), "ansible_python_interpreter": sys.executable},
                    "hosts": hosts,
                }
            }
        )
    )
    env = {
        **base_env,
        "PATH": f"{Path(sys.executable).parent}:{base_env['PATH']}",
        "LANG": "C.UTF-8",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "OTDOCTOR_REPORTS_DIR": str(tmp_path / "fleet-reports"),
    }
    return {"inventory": inventory, "env": env, "reports": tmp_path / "fleet-reports", "tmp": tmp_path}


@pytest.mark.slow
def test_ansible_collects_every_hosts_report_and_merge_shows_the_differences(fleet, run_cli):
    play = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(fleet["inventory"]), str(FLEET / "otdoctor-check.yml")],
        env=fleet["env"],
        cwd=str(fleet["tmp"]),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert play.returncode == 0, play.stdout + play.stderr
    recap = [line for line in play.stdout.splitlines() if line.startswith("gpu-")]
    assert len(recap) == 4 and all("failed=0" in line and "unreachable=0" in line for line in recap), recap
    files = sorted(p.name for p in fleet["reports"].iterdir())
    assert files == ["gpu-4090.json", "gpu-broken.json", "gpu-h100.json", "gpu-no-otdoctor.json"]
    h100 = json.loads((fleet["reports"] / "gpu-h100.json").read_text())
    assert h100["ot_dir"].endswith("host-a/OneTrainer")  # OT_DIR from the host's vars

    merged = run_cli("merge", str(fleet["reports"]), "--format", "json")
    assert merged.returncode == 1, merged.stderr  # one host is broken, one could not run otdoctor
    summary = json.loads(merged.stdout)
    machines = {m["name"]: m for m in summary["machines"]}
    assert set(machines) == {"gpu-h100", "gpu-4090", "gpu-broken", "gpu-no-otdoctor"}
    nowhere = fleet["tmp"] / "nowhere" / "otdoctor"
    assert machines["gpu-no-otdoctor"]["error"] == (
        f"otdoctor did not run: Error executing command. `{nowhere} check --format json` (exit 2); "
        "is otdoctor installed there (otdoctor_bin)?"
    )
    assert "onetrainer.checkout" in machines["gpu-broken"]["failing"]
    assert machines["gpu-h100"]["facts"]["driver"] == "580.159.04"
    assert machines["gpu-4090"]["facts"]["driver"] == "570.133.07"
    assert machines["gpu-h100"]["facts"]["GPU"] == "NVIDIA H100 80GB HBM3"
    assert machines["gpu-h100"]["facts"]["torch"].startswith("2.13.0")
    assert machines["gpu-h100"]["facts"]["torch build"] == "CPU-only"
    assert "torch" not in machines["gpu-4090"]["facts"]
    diff = summary["differences"]
    assert {"driver", "GPU", "free VRAM", "torch", "OneTrainer"} <= set(diff["facts"])
    assert diff["facts"]["driver"] == {"gpu-h100": "580.159.04", "gpu-4090": "570.133.07", "gpu-broken": "580.159.04"}
    assert diff["checks"]["onetrainer.checkout"]["gpu-broken"] == "fail"
    assert summary["unreadable"] == {"gpu-no-otdoctor": machines["gpu-no-otdoctor"]["error"]}

    table = run_cli("merge", *sorted(str(p) for p in fleet["reports"].iterdir()), env={"COLUMNS": "220"})
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    h100_row = next(line for line in lines if line.startswith("│ gpu-h100"))
    assert "580.159.04" in h100_row and "NVIDIA H100 80GB HBM3" in h100_row and "2.13.0" in h100_row
    assert "≠driver" in table.stdout and "≠GPU" in table.stdout
    assert any(line.startswith("│ gpu-no-otdoctor") and "unreadable" in line for line in lines)
    assert "gpu-broken: onetrainer.checkout:" in table.stdout


def test_merge_is_robust_to_missing_checks_and_bad_files(run_cli, tmp_path):
    old = {
        "schema_version": 1,
        "host": {"hostname": "old-box"},
        "summary": {"ok": 1, "exit_code": 0},
        "checks": [
            {
                "id": "gpu.driver",
                "area": "gpu",
                "status": "ok",
                "summary": "driver 535",
                "data": {"driver_version": "535.54.03"},
            }
        ],
    }
    new = {
        "schema_version": 1,
        "host": {"hostname": "new-box"},
        "summary": {"ok": 2, "exit_code": 0},
        "checks": [
            {
                "id": "gpu.driver",
                "area": "gpu",
                "status": "ok",
                "summary": "driver 580",
                "data": {"driver_version": "580.159.04"},
            },
            {
                "id": "venv.torch",
                "area": "venv",
                "status": "ok",
                "summary": "torch",
                "data": {"version": "2.9.0+cu130", "cuda": "13.0", "build": "cuda"},
            },
        ],
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    # Captured stdout sometimes carries a line before the JSON (an ssh banner, a shell's motd).
    (tmp_path / "new.json").write_text("Welcome to new-box\n" + json.dumps(new))
    (tmp_path / "list.json").write_text("[1, 2]")
    proc = run_cli(
        "merge", str(tmp_path / "old.json"), str(tmp_path / "new.json"), str(tmp_path / "list.json"), "--format", "json"
    )
    summary = json.loads(proc.stdout)
    machines = {m["name"]: m for m in summary["machines"]}
    assert proc.returncode == 1  # the unreadable one
    assert machines["list"]["error"] == "not an otdoctor check report (no 'checks' list)"
    assert machines["new-box"]["facts"] == {"driver": "580.159.04", "torch": "2.9.0+cu130", "torch build": "CUDA 13.0"}
    assert machines["old-box"]["facts"] == {"driver": "535.54.03"}
    assert "venv.torch" not in summary["differences"]["checks"]  # missing in one report is not a difference
    assert summary["differences"]["facts"]["driver"] == {"old-box": "535.54.03", "new-box": "580.159.04"}

    missing = run_cli("merge", str(tmp_path / "nope.json"))
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"otdoctor: error: report not found: {tmp_path / 'nope.json'}"
    )


def test_merge_reads_report_zips(run_cli, tmp_path, home):
    ot = make_onetrainer(home / "OneTrainer")
    snap = {"OTDOCTOR_NVML_SNAPSHOT": str(NVML / "rtx4090-desktop.json")}
    assert run_cli("report", "--ot-dir", str(ot), "--output", str(tmp_path / "a.zip"), env=snap).returncode == 0
    proc = run_cli("merge", str(tmp_path / "a.zip"), "--format", "json")
    m = json.loads(proc.stdout)["machines"][0]
    assert m["facts"]["driver"] == "570.133.07" and m["facts"]["GPU"] == "NVIDIA GeForce RTX 4090"
    assert m["hostname"] == "<host>"  # anonymised in the bundle, so the row is named after the file
    assert m["name"] == "a"


SLURM_CONF = """\
ClusterName=otdoctor-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def slurm(tmp_path: Path):
    """A one-node Slurm cluster on this machine (Debian's slurm-wlm and munge), torn down after."""
    import contextlib
    import os
    import signal
    import socket
    import time

    need = ("munged", "slurmctld", "slurmd", "srun", "salloc", "sinfo")
    if any(shutil.which(n) is None for n in need) or not Path("/etc/munge/munge.key").exists():
        pytest.skip("Slurm is not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("slurmd must run as root")
    d = tmp_path / "slurm"
    (d / "state").mkdir(parents=True)
    (d / "spool").mkdir()
    key = d / "munge.key"
    shutil.copy("/etc/munge/munge.key", key)
    key.chmod(0o600)
    d.chmod(0o700)
    conf = d / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=socket.gethostname(), d=d, ctld_port=_free_port(), d_port=_free_port(), cpus=os.cpu_count() or 1
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    subprocess.run(
        [
            "munged",
            "-f",
            f"--key-file={key}",
            f"--socket={d}/munge.sock",
            f"--log-file={d}/munged.log",
            f"--pid-file={d}/munged.pid",
            f"--seed-file={d}/munged.seed",
        ],
        check=True,
        env=env,
    )
    started.append(d / "munged.pid")
    subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
    started.append(d / "slurmctld.pid")
    subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
    started.append(d / "slurmd.pid")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the test cluster did not come up: sinfo says {state!r}")
        yield env
    finally:
        for pid_file in reversed(started):  # only the daemons this fixture started, by their pid
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


@pytest.mark.slow
def test_slurm_runs_otdoctor_on_each_node_and_merges(slurm, tmp_path, base_env, home):
    ot = make_onetrainer(home / "OneTrainer")
    reports = tmp_path / "fleet-reports"
    env = {
        **base_env,
        "SLURM_CONF": slurm["SLURM_CONF"],
        "OT_DIR": str(ot),
        "OTDOCTOR": otdoctor_exe(),
        "OTDOCTOR_REPORTS_DIR": str(reports),
        "COLUMNS": "160",
    }
    # `salloc -N 1 bash scripts/fleet/slurm-otdoctor.sh`, as the README says for an allocation.
    proc = subprocess.run(
        ["salloc", "-N", "1", "bash", str(FLEET / "slurm-otdoctor.sh")],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    import socket

    node = socket.gethostname()
    assert sorted(p.name for p in reports.iterdir()) == [f"{node}.json"], proc.stderr
    report = json.loads((reports / f"{node}.json").read_text())
    assert report["ot_dir"] == str(ot)  # the task saw the submitting shell's OT_DIR
    assert proc.returncode == 1  # no GPU here (--require-gpu): the merged verdict fails the job
    assert "otdoctor merge: 1 machines" in proc.stdout and f"{node}: gpu.driver: no NVIDIA GPU" in proc.stdout
