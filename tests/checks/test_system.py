"""The system checks against this machine's real git, disks, filesystems, memory and platform.

Filesystems that need root (a small tmpfs, a FAT image through fusefat, an exFAT image on a loop
device through exfat-fuse) are really mounted here; where that is not allowed the test is skipped
with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from otdoctor.checks.system import assess_platform
from otdoctor.checks.system_disk import save_bytes
from otdoctor.checks.system_memory import assess_memory, memory_need
from otdoctor.checks.system_path import fstype_problem, move_target
from otdoctor.engine.results import Status
from otdoctor.probe import Probe
from otdoctor.probe.host import PlatformInfo
from tests.support.factory import make_onetrainer, otdoctor_exe


def report(proc) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


@pytest.fixture
def ot(tmp_path: Path) -> Path:
    return make_onetrainer(tmp_path / "Projects" / "OneTrainer")


# Mounting real filesystems -----------------------------------------------------------------------
def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True)


def _need_root_tools(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting filesystems needs root")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (apt install dosfstools fusefat exfat-fuse exfatprogs)")


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str):
    _need_root_tools("mount", "umount")
    where.mkdir(parents=True)
    proc = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        _run("umount", str(where))


@contextlib.contextmanager
def mounted_fat(image: Path, where: Path):
    """A real FAT16 image (mkfs.vfat) mounted through fusefat (no vfat kernel module here)."""
    _need_root_tools("mkfs.vfat", "fusefat", "fusermount")
    with open(image, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", str(image)], check=True, capture_output=True)
    where.mkdir(parents=True)
    proc = _run("fusefat", "-o", "rw+", str(image), str(where))
    if proc.returncode:
        pytest.skip(f"cannot mount FAT through fusefat: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        _run("fusermount", "-u", str(where))


@contextlib.contextmanager
def mounted_exfat(image: Path, where: Path):
    """A real exFAT image on a loop device, mounted through exfat-fuse (it shows as `fuseblk`)."""
    _need_root_tools("mkfs.exfat", "mount.exfat-fuse", "losetup", "fusermount")
    with open(image, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    loop = _run("losetup", "-f", "--show", str(image))
    if loop.returncode:
        pytest.skip(f"no loop device: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    where.mkdir(parents=True)
    try:
        proc = _run("mount.exfat-fuse", device, str(where))
        if proc.returncode:
            pytest.skip(f"cannot mount exFAT: {proc.stderr.strip()}")
        try:
            yield where
        finally:
            _run("fusermount", "-u", str(where))
    finally:
        _run("losetup", "-d", device)


def copy_plain(src: Path, dst: Path) -> None:
    """Copy a checkout onto FAT: contents only, since FAT has no permission bits to copy."""
    for path in sorted(src.rglob("*")):
        if ".git" in path.relative_to(src).parts:
            continue
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


# system.git ----------------------------------------------------------------------------------------
def test_git_version_is_reported(run_cli, ot):
    proc = run_cli("check", "--ot-dir", str(ot), "--only", "system.git", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    git = report(proc)["system.git"]
    real = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]
    assert git["status"] == "ok" and git["data"]["version"] == real


def test_missing_git_fails_with_install_command(run_cli, ot, tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    proc = run_cli("check", "--ot-dir", str(ot), "--only", "system.git", env={"PATH": str(empty_bin)})
    assert proc.returncode == 1
    assert "✗ git (system.git): git is not installed" in proc.stdout
    assert "sudo apt install git" in proc.stdout


# system.disk ---------------------------------------------------------------------------------------
def test_disk_reports_real_free_bytes_of_the_checkouts_filesystem(run_cli, ot):
    proc = run_cli(
        "check", "--ot-dir", str(ot), "--only", "system.disk", "--only", "onetrainer.checkout", "--format", "json"
    )
    disk = report(proc)["system.disk"]
    (fs,) = disk["data"]["filesystems"]  # checkout and default model output share one filesystem
    real = shutil.disk_usage(ot)
    df = subprocess.run(["df", "-B1", "--output=target,size", str(ot)], capture_output=True, text=True).stdout.split()
    assert fs["mountpoint"] == df[-2]
    assert fs["total_bytes"] == real.total == int(df[-1])
    # Others write to this disk while the test runs: allow 256 MiB of drift.
    assert abs(fs["free_bytes"] - real.free) < 256 * 1024**2
    roles = [h["role"] for h in fs["holds"]]
    assert roles == ["checkout (venv)", "model output"]
    # No venv yet: room to install one, plus one SDXL bf16 save (~6.9 GB).
    assert fs["needed_bytes"] == 10_000_000_000 + 6_940_000_000
    expected_status = (
        "ok" if real.free >= 2 * fs["needed_bytes"] else ("warn" if real.free >= fs["needed_bytes"] else "fail")
    )
    assert disk["status"] == expected_status


def test_disk_with_config_lists_each_filesystem_once_and_fails_the_full_one(run_cli, ot, tmp_path):
    with mounted_tmpfs(tmp_path / "small", "64m") as small:
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps(
                {
                    "model_type": "STABLE_DIFFUSION_XL_10_BASE",
                    "training_method": "FINE_TUNE",
                    "output_dtype": "BFLOAT_16",
                    "workspace_dir": str(small / "workspace" / "run"),
                    "cache_dir": str(small / "cache" / "run"),
                    "output_model_destination": "models/sdxl.safetensors",
                }
            )
        )
        proc = run_cli(
            "check",
            "--ot-dir",
            str(ot),
            "--config",
            str(config),
            "--only",
            "system.disk",
            "--only",
            "onetrainer.checkout",
            "--format",
            "json",
        )
        disk = report(proc)["system.disk"]
        fss = {fs["mountpoint"]: fs for fs in disk["data"]["filesystems"]}
        assert set(fss) == {str(small), _mountpoint(ot)}
        tiny = fss[str(small)]
        assert tiny["fstype"] == "tmpfs" and tiny["free_bytes"] == shutil.disk_usage(small).free
        assert sorted(h["role"] for h in tiny["holds"]) == ["cache", "workspace"]
        assert tiny["state"] == "too little"
        assert disk["status"] == "fail" and proc.returncode == 1
        assert str(small) in disk["fix"]["summary"]

        text = run_cli("check", "--ot-dir", str(ot), "--config", str(config), "--only", "system.disk")
        assert f"{small} (tmpfs): 64.0 MiB free of 64.0 MiB, needs 11.1 GiB (too little)" in text.stdout


def _mountpoint(path: Path) -> str:
    return subprocess.run(["df", "--output=target", str(path)], capture_output=True, text=True).stdout.split()[-1]


def test_disk_config_on_dev_shm_uses_its_real_numbers(run_cli, ot, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm")
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "model_type": "STABLE_DIFFUSION_15",
                "training_method": "LORA",
                "workspace_dir": "/dev/shm/otdoctor-test-ws",
                "cache_dir": "/dev/shm/otdoctor-test-cache",
            }
        )
    )
    proc = run_cli(
        "check",
        "--ot-dir",
        str(ot),
        "--config",
        str(config),
        "--only",
        "system.disk",
        "--only",
        "onetrainer.checkout",
        "--format",
        "json",
    )
    fss = {fs["mountpoint"]: fs for fs in report(proc)["system.disk"]["data"]["filesystems"]}
    fs = fss["/dev/shm"]
    assert fs["fstype"] == "tmpfs"
    assert abs(fs["free_bytes"] - shutil.disk_usage(shm).free) < 64 * 1024**2
    # A LoRA save is small: workspace (one backup) 1 GB + caches 5 GB.
    assert fs["needed_bytes"] == 1_000_000_000 + 5_000_000_000
    assert not (shm / "otdoctor-test-ws").exists()  # measuring creates nothing


def test_save_sizes_follow_model_dtype_and_method():
    assert save_bytes("STABLE_DIFFUSION_XL_10_BASE", "BFLOAT_16", "FINE_TUNE") == 6_940_000_000
    assert save_bytes("STABLE_DIFFUSION_XL_10_BASE", "FLOAT_32", "FINE_TUNE") == 13_880_000_000  # ~13.9 GB
    assert save_bytes("STABLE_DIFFUSION_15", "FLOAT_16", "FINE_TUNE") == 2_140_000_000
    assert save_bytes("STABLE_DIFFUSION_XL_10_BASE", "BFLOAT_16", "LORA") == 1_000_000_000


# system.memory ---------------------------------------------------------------------------------------
def _meminfo_total_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def test_memory_reports_real_ram_and_the_threshold_it_used(run_cli, ot):
    proc = run_cli("check", "--ot-dir", str(ot), "--only", "system.memory", "--format", "json")
    mem = report(proc)["system.memory"]
    assert mem["data"]["total_bytes"] == _meminfo_total_bytes()
    assert mem["data"]["basis"] == "SDXL fine-tuning"
    assert mem["data"]["min_total_bytes"] == 15_000_000_000
    assert "OOM" in mem["data"]["threshold_why"]
    total = mem["data"]["total_bytes"]
    expected = "fail" if total < 15e9 else ("warn" if total < 30e9 else mem["status"])
    assert mem["status"] == expected
    assert mem["required"] is False  # low RAM fails the run only under --strict


def test_memory_decision_against_real_numbers():
    info = Probe().memory()
    total = info.total_bytes
    fail = assess_memory(info, total + 1, total + 2, "SDXL fine-tuning")
    assert fail.status is Status.FAIL and "swap" in fail.fix.commands[0]
    warn = assess_memory(info, total // 2, total + 1, "SDXL fine-tuning")
    assert warn.status is Status.WARN
    ok = assess_memory(info, min(total, info.available_bytes) // 2, total // 2, "SDXL fine-tuning")
    assert ok.status is Status.OK


def test_memory_need_grows_with_ema_on_cpu_and_shrinks_for_sd15(run_cli, ot, tmp_path):
    sdxl_min, _, _ = memory_need()
    ema_min, _, basis = memory_need("STABLE_DIFFUSION_XL_10_BASE", "CPU")
    sd15_min, _, _ = memory_need("STABLE_DIFFUSION_15")
    assert sd15_min < sdxl_min < ema_min and basis == "SDXL fine-tuning with EMA on the CPU"
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"model_type": "STABLE_DIFFUSION_XL_10_BASE", "ema": "CPU"}))
    proc = run_cli("check", "--ot-dir", str(ot), "--config", str(config), "--only", "system.memory", "--format", "json")
    assert report(proc)["system.memory"]["data"]["min_total_bytes"] == ema_min


# system.path ---------------------------------------------------------------------------------------
def test_path_with_a_space_fails_with_a_move_command(run_cli, tmp_path):
    ot = make_onetrainer(tmp_path / "My Projects" / "OneTrainer")
    proc = run_cli("check", "--ot-dir", str(ot), "--only", "system.path", "--only", "onetrainer.checkout")
    assert proc.returncode == 1
    assert "✗ Checkout path and filesystem (system.path)" in proc.stdout
    assert "contains a space" in proc.stdout
    assert f"mv '{ot}'" in proc.stdout


def test_a_home_with_a_space_gets_a_target_outside_it(run_cli, tmp_path):
    """With HOME at '/.../John Smith' every folder under it has a space too: the printed move goes to
    /opt (as root, handing the checkout back to the user) and says plainly why."""
    home = tmp_path / "John Smith"
    ot = make_onetrainer(home / "My Projects" / "OneTrainer")
    proc = run_cli(
        "check",
        "--ot-dir",
        str(ot),
        "--only",
        "system.path",
        "--only",
        "onetrainer.checkout",
        "--format",
        "json",
        env={"HOME": str(home)},
    )
    fix = report(proc)["system.path"]["fix"]
    target = move_target(home)
    assert target.parent == Path("/opt") and " " not in str(target)
    assert f"home folder '{home}' itself has a space" in fix["summary"] and "needs sudo" in fix["summary"]
    assert fix["commands"] == [
        f"sudo mkdir -p /opt && sudo mv '{ot}' {target} && sudo chown -R \"$(id -un):$(id -gn)\" {target}",
        f"cd {target} && rm -rf venv && ./install.sh",
    ]
    for cmd in fix["commands"]:  # each parses as bash (running it needs root and writes to /opt)
        assert subprocess.run(["bash", "-n", "-c", cmd]).returncode == 0


def test_path_on_ext4_is_ok(run_cli, ot):
    proc = run_cli(
        "check", "--ot-dir", str(ot), "--only", "system.path", "--only", "onetrainer.checkout", "--format", "json"
    )
    path = report(proc)["system.path"]
    real_type = subprocess.run(["df", "--output=fstype", str(ot)], capture_output=True, text=True).stdout.split()[-1]
    assert path["data"]["fstype"] == real_type
    if real_type in ("ext4", "xfs", "btrfs", "overlay", "tmpfs"):
        assert path["status"] == "ok" and proc.returncode == 0


def test_checkout_on_a_real_fat_filesystem_fails(run_cli, tmp_path):
    source = make_onetrainer(tmp_path / "src" / "OneTrainer", git_init=False)
    with mounted_fat(tmp_path / "fat.img", tmp_path / "usb") as usb:
        ot = usb / "OneTrainer"
        copy_plain(source, ot)
        proc = run_cli(
            "check", "--ot-dir", str(ot), "--only", "system.path", "--only", "onetrainer.checkout", "--format", "json"
        )
        path = report(proc)["system.path"]
        assert path["data"]["fstype"] == "fuse.fusefat"
        assert path["status"] == "fail" and proc.returncode == 1
        assert "FAT family" in path["summary"] and str(usb) in path["summary"]


def test_checkout_on_a_real_exfat_filesystem_fails_through_blkid(run_cli, tmp_path):
    source = make_onetrainer(tmp_path / "src" / "OneTrainer", git_init=False)
    with mounted_exfat(tmp_path / "ex.img", tmp_path / "stick") as stick:
        ot = stick / "OneTrainer"
        copy_plain(source, ot)
        proc = run_cli(
            "check", "--ot-dir", str(ot), "--only", "system.path", "--only", "onetrainer.checkout", "--format", "json"
        )
        path = report(proc)["system.path"]
        assert path["data"]["fstype"] == "fuseblk" and path["data"]["block_fstype"] == "exfat"
        assert path["status"] == "fail"


def test_fstype_decision_on_real_mount_table_entries():
    """The probe's view of mounts that exist here, and of the names FAT/NTFS mounts use."""
    probe = Probe()
    root = probe.disk_usage(Path("/"))
    assert fstype_problem(root.fstype) is None
    shm = probe.disk_usage(Path("/dev/shm"))
    if shm is not None and shm.mountpoint == "/dev/shm":
        assert shm.fstype == "tmpfs" and fstype_problem(shm.fstype) is None
    assert fstype_problem("vfat")[0] is Status.FAIL
    assert fstype_problem("exfat")[0] is Status.FAIL
    assert fstype_problem("fuseblk", "ntfs")[0] is Status.WARN
    assert fstype_problem("fuseblk")[0] is Status.WARN  # type unknown without blkid
    assert fstype_problem("9p")[0] is Status.WARN  # WSL's /mnt/c


# system.platform ---------------------------------------------------------------------------------------
def test_platform_reports_this_machine(run_cli, ot):
    proc = run_cli("check", "--only", "system.platform", "--format", "json")
    plat = report(proc)["system.platform"]
    uname = subprocess.run(["uname", "-sm"], capture_output=True, text=True).stdout.split()
    assert [plat["data"]["system"], plat["data"]["machine"]] == uname
    if os.path.exists("/.dockerenv"):
        assert plat["data"]["container"] == "docker" and "docker container" in plat["summary"]
    if platform.machine() == "x86_64" and platform.system() == "Linux":
        assert plat["status"] == "ok"


def test_32_bit_personality_has_no_cuda_wheels(base_env, tmp_path):
    """`setarch i686` really changes what uname reports to the doctor's process."""
    if platform.machine() != "x86_64" or shutil.which("setarch") is None:
        pytest.skip("needs setarch on x86_64")
    proc = subprocess.run(
        ["setarch", "i686", otdoctor_exe(), "check", "--only", "system.platform"],
        capture_output=True,
        text=True,
        env=base_env,
        cwd=tmp_path,
    )
    if "setarch" in proc.stderr and proc.returncode != 1:
        pytest.skip(f"setarch i686 not allowed here: {proc.stderr.strip()}")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "✗ Operating system and architecture (system.platform): Linux" in proc.stdout
    assert "i686" in proc.stdout and "no i686 wheels" in proc.stdout


# Recorded from real machines (uname -srm, /etc/os-release): a Graviton/Raspberry Pi aarch64 Linux
# and an Apple silicon Mac, where the probe cannot run here.
AARCH64_LINUX = PlatformInfo("Linux", "6.1.0-28-arm64", "aarch64", "Debian GNU/Linux 12 (bookworm)", False, None)
MACOS_ARM = PlatformInfo("Darwin", "23.6.0", "arm64", None, False, None)
WSL2 = PlatformInfo("Linux", "5.15.167.4-microsoft-standard-WSL2", "x86_64", "Ubuntu 22.04.5 LTS", True, None)


def test_aarch64_linux_fails_and_macos_warns_and_wsl_is_noted():
    arm = assess_platform(AARCH64_LINUX)
    assert arm.status is Status.FAIL and "no aarch64 wheels" in arm.why
    mac = assess_platform(MACOS_ARM)
    assert mac.status is Status.WARN and "no CUDA" in mac.why
    wsl = assess_platform(WSL2)
    assert wsl.status is Status.OK and "under WSL" in wsl.summary and any("/mnt/c" in d for d in wsl.details)


def test_disk_follows_the_uis_last_used_config_and_survives_a_broken_one(run_cli, ot, tmp_path):
    presets = ot / "training_presets"
    presets.mkdir()
    (presets / "#.json").write_text(
        json.dumps({"model_type": "STABLE_DIFFUSION_15", "cache_dir": "/dev/shm/otdoctor-test-cache"})
    )
    proc = run_cli(
        "check", "--ot-dir", str(ot), "--only", "system.disk", "--only", "onetrainer.checkout", "--format", "json"
    )
    disk = report(proc)["system.disk"]
    holds = {h["role"]: h["path"] for fs in disk["data"]["filesystems"] for h in fs["holds"]}
    assert holds["cache"] == "/dev/shm/otdoctor-test-cache"
    assert holds["workspace"] == str(ot / "workspace" / "run")  # OneTrainer's default, inside the checkout

    broken = tmp_path / "broken.json"
    broken.write_text('{"model_type": "STABLE_DIFFUSION_15",\n  "cache_dir": }')
    proc = run_cli(
        "check",
        "--ot-dir",
        str(ot),
        "--config",
        str(broken),
        "--only",
        "system",
        "--only",
        "onetrainer.checkout",
        "--format",
        "json",
    )
    checks = report(proc)
    assert checks["system.disk"]["status"] in ("ok", "warn", "fail")  # measured, not crashed
    assert any("not read" in d and "line 2" in d for d in checks["system.disk"]["details"])
    assert checks["system.memory"]["data"]["basis"] == "SDXL fine-tuning"


def test_missing_git_names_the_package_manager_on_path(run_cli, ot, tmp_path):
    """A PATH with only `dnf` (a real executable script standing in for Fedora's) gets a dnf command."""
    bin_dir = tmp_path / "fedora-bin"
    bin_dir.mkdir()
    dnf = bin_dir / "dnf"
    dnf.write_text("#!/bin/sh\nexit 0\n")
    dnf.chmod(0o755)
    proc = run_cli("check", "--ot-dir", str(ot), "--only", "system.git", env={"PATH": str(bin_dir)})
    assert proc.returncode == 1
    assert "sudo dnf install git" in proc.stdout and "apt" not in proc.stdout
