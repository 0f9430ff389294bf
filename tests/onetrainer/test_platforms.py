"""The one platform chooser: what ./install.sh would install (the checks) and what `otdoctor install`
installs, on recorded machines (NVML snapshots, a real nvidia-smi header, device nodes under a sysroot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from otdoctor.errors import UserError
from otdoctor.onetrainer.gpu_facts import cuda_of_build, detect_gpu
from otdoctor.onetrainer.platforms import (
    CUDA_FILE_MIN_MAJOR,
    PLATFORMS,
    choose_platform,
    choose_requirements,
)
from otdoctor.probe import Probe
from tests.support import NVML_DATA
from tests.support.factory import make_onetrainer


def _probe(tmp_path: Path, snapshot: str | None = None, kfd: bool = False, **env: str) -> Probe:
    sysroot = tmp_path / "sysroot"
    (sysroot / "dev").mkdir(parents=True, exist_ok=True)
    if kfd:
        (sysroot / "dev" / "kfd").touch()
    # An empty PATH: this machine's own nvidia-smi must not decide.
    (tmp_path / "empty-bin").mkdir(exist_ok=True)
    full = {"PATH": str(tmp_path / "empty-bin"), "HOME": str(tmp_path), **env}
    if snapshot:
        full["OTDOCTOR_NVML_SNAPSHOT"] = str(NVML_DATA / snapshot)
    return Probe(env=full, sysroot=sysroot)


def test_build_tags_and_the_cuda_file_threshold_come_from_the_tables():
    assert cuda_of_build("cu130") == (13, 0) and cuda_of_build("cu126") == (12, 6)
    assert CUDA_FILE_MIN_MAJOR == 13
    assert PLATFORMS == ("auto", "cuda", "cuda-legacy", "rocm", "cpu")


def test_no_gpu_the_launcher_says_default_the_install_says_cpu(tmp_path):
    probe = _probe(tmp_path, "no-gpu.json")
    launcher = choose_requirements(probe, None)
    install = choose_platform(probe)
    assert launcher.file == install.file == "requirements-default.txt"
    assert (launcher.key, launcher.platform) == ("cpu", "default")
    assert launcher.reason == "no NVIDIA or AMD GPU found: no /dev/nvidia0, nvidia-smi or /dev/kfd"
    assert install.reason == "no NVIDIA or AMD GPU found"


def test_amd(tmp_path):
    probe = _probe(tmp_path, "no-gpu.json", kfd=True)
    assert choose_requirements(probe).reason == "AMD GPU (/dev/kfd)"
    assert choose_platform(probe).reason == "/dev/kfd exists (AMD ROCm)"
    assert choose_platform(probe).key == choose_requirements(probe).platform == "rocm"


def test_the_variable_wins_and_is_an_override_for_the_checks(tmp_path):
    ot = make_onetrainer(tmp_path / "OT", git_init=False)
    probe = _probe(tmp_path, "h100-idle.json", OT_PLATFORM_REQUIREMENTS="requirements-rocm.txt")
    launcher = choose_requirements(probe, ot)
    assert (launcher.key, launcher.platform, launcher.file) == ("rocm", "override", "requirements-rocm.txt")
    assert launcher.reason == "OT_PLATFORM_REQUIREMENTS=requirements-rocm.txt"
    install = choose_platform(probe)
    assert (install.key, install.reason) == ("rocm", "OT_PLATFORM_REQUIREMENTS")
    custom = _probe(tmp_path, OT_PLATFORM_REQUIREMENTS="my-requirements.txt")
    assert choose_platform(custom).key == "custom" and choose_requirements(custom).platform == "override"
    detect = _probe(tmp_path, "no-gpu.json", OT_PLATFORM_REQUIREMENTS="detect")
    assert choose_platform(detect).key == "cpu"


def test_the_flag_wins_and_unknown_platforms_are_refused(tmp_path):
    probe = _probe(tmp_path, "h100-idle.json")
    choice = choose_platform(probe, "cuda-legacy")
    assert (choice.key, choice.file, choice.reason) == (
        "cuda-legacy",
        "requirements-cuda-legacy.txt",
        "--platform cuda-legacy",
    )
    with pytest.raises(UserError) as err:
        choose_platform(probe, "tpu")
    assert err.value.exit_code == 2 and "choose one of auto, cuda, cuda-legacy, rocm, cpu" in err.value.message


def test_blackwell_on_a_cuda_12_driver_is_blocked_with_the_driver_to_install(tmp_path):
    probe = _probe(tmp_path, "rtx5090-driver575.json")
    gpu = detect_gpu(probe)
    assert gpu.nvidia and gpu.driver_cuda is not None and gpu.driver_cuda[0] < 13
    choice = choose_platform(probe, gpu=gpu)
    assert choice.key == "cuda-legacy" and choice.blocker is not None
    assert "needs a torch build for CUDA 12.8 or newer" in choice.blocker
    assert "the legacy requirements are CUDA 12.6: update the NVIDIA driver to 580.65.06 or newer" in choice.blocker


def test_an_old_gpu_gets_the_legacy_file(tmp_path):
    choice = choose_platform(_probe(tmp_path, "gtx1080-driver580.json"))
    assert choice.key == "cuda-legacy" and choice.blocker is None
    assert choice.reason.endswith("compute capability 6.1; CUDA 13 builds dropped GPUs below 7.5")


def test_a_cuda_12_driver_gets_the_legacy_file_and_a_hint(tmp_path):
    choice = choose_platform(_probe(tmp_path, "rtx4090-desktop.json"))
    assert choice.key == "cuda-legacy" and choice.blocker is None
    assert choice.reason.endswith("; the cu130 build needs a driver >= 580 (CUDA 13)")
    assert choice.warnings == ("updating the NVIDIA driver to 580 or newer allows the faster CUDA 13 build",)
