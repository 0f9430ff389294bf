"""gpu.cuda-build: the torch build OneTrainer's launcher would install, and the one in its venv,
against the driver's CUDA version and the training GPU's compute capability."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.data import load_table
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome
from otdoctor.gpu import reasoning as g
from otdoctor.install.actions import no_checkout
from otdoctor.install.python_pin import Confirm
from otdoctor.onetrainer import platforms
from otdoctor.onetrainer.gpu_facts import detect_gpu, parse_capability
from otdoctor.onetrainer.platforms import PlatformChoice
from otdoctor.probe.nvml import GpuDevice, GpuInfo

from .gpu_common import gpu_info, no_gpu
from .venv_packages import reinstall_platform_requirements, reinstall_torch_fix


def launcher_choice(ctx: Context, info: GpuInfo) -> PlatformChoice:
    """The requirements file `./install.sh` would pick; on a replayed machine, from its NVML snapshot."""
    if info.snapshot is None:
        return platforms.choose_requirements(ctx.probe, ctx.ot_dir)
    return platforms.choose_requirements_replayed(ctx.probe, ctx.ot_dir, info.cuda_driver_version_str)


def _arch_list(ctx: Context, tag: str | None) -> tuple[list[str] | None, str]:
    from otdoctor.onetrainer import venv_facts as facts

    torch_facts = getattr(facts, "torch_facts", None)
    if torch_facts is not None:
        tf = torch_facts(ctx)
        arch = tf.data.get("arch_list") if tf is not None and tf.importable else None
        # get_arch_list() is empty where CUDA cannot initialise (no driver here): use the table then.
        if isinstance(arch, list) and arch:
            return [str(a) for a in arch], "torch.cuda.get_arch_list()"
    return g.default_arch_list(tag), f"the official {tag} wheels' arch list" if tag else "unknown"


@dataclass
class _Findings:
    """What gpu.cuda-build found so far: problems with their fixes, detail lines and JSON data."""

    fails: list[tuple[str, Fix]] = field(default_factory=list)
    warns: list[tuple[str, Fix]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Builds:
    """The torch builds the advice names, from the tables: the launcher's current and legacy CUDA
    builds, the first build for Blackwell GPUs, and the limits that send a machine to each."""

    current: str  # cu130, what requirements-cuda.txt installs
    legacy: str  # cu126, what requirements-cuda-legacy.txt installs
    legacy_file: str
    current_min_capability: tuple[int, int]  # CUDA 13 dropped GPUs below this
    current_min_driver: str  # the first driver that runs the current build
    blackwell: str  # cu128
    blackwell_capability: tuple[int, int]

    def index_url(self, tag: str) -> str:
        return str(load_table("cuda_drivers.toml")["torch_index"]["url"]).format(tag=tag)


def _builds() -> _Builds:
    drivers = load_table("cuda_drivers.toml")
    install = load_table("install.toml")
    files = install["platform_files"]
    current = drivers["onetrainer_builds"][files["cuda"]]
    major = str(g.tag_cuda(current)[0])
    blackwell = install["blackwell"]
    return _Builds(
        current=current,
        legacy=drivers["onetrainer_builds"][files["cuda-legacy"]],
        legacy_file=files["cuda-legacy"],
        current_min_capability=parse_capability(drivers["min_compute_capability"][major]),
        current_min_driver=drivers["minor_compat_min_driver"]["linux"][major],
        blackwell="cu" + blackwell["min_cuda"].replace(".", ""),
        blackwell_capability=parse_capability(blackwell["min_compute_capability"]),
    )


def _cuda_name(tag: str) -> str:
    """'cu126' -> '12.6'."""
    major, minor = g.tag_cuda(tag)
    return f"{major}.{minor}"


def _cc_name(capability: tuple[int, int]) -> str:
    return f"{capability[0]}.{capability[1]}"


class CudaBuild(Check):
    id = "gpu.cuda-build"
    title = "torch CUDA build vs driver and GPU"
    area = "gpu"
    requires = ("gpu.driver",)
    timeout_s = 200.0  # may import torch once (cached afterwards)

    def diagnose(self, ctx: Context) -> CheckResult:
        info = gpu_info(ctx)
        skip = no_gpu(ctx, info)
        if skip is not None:
            return skip
        dev = g.training_device(info) or (info.devices[0] if info.devices else None)
        found = _Findings(
            data={
                "gpu": dev.name if dev else None,
                "compute_capability": dev.compute_capability_str if dev else None,
            }
        )
        choice = launcher_choice(ctx, info)
        launcher_tag = _judge_launcher(found, info, dev, choice.file, choice.reason)
        static = _judge_venv(ctx, found, info, dev, choice.file, launcher_tag)
        return _result(found, info, dev, static)

    def fix(self, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
        """A driver too old for the venv's torch gets the legacy build (or the driver to install); a
        CPU/ROCm/wrong-arch torch gets the platform file this machine needs."""
        if ctx.ot_dir is None:
            return no_checkout(self.id)
        gpu = detect_gpu(ctx.probe)
        if gpu.driver_cuda is not None and gpu.driver_cuda[0] < platforms.CUDA_FILE_MIN_MAJOR:
            return _use_legacy_requirements(self.id, ctx, dry_run)
        return reinstall_platform_requirements(self.id, ctx, dry_run)


def _use_legacy_requirements(check_id: str, ctx: Context, dry_run: bool) -> FixOutcome:
    """The driver is too old for the cu130 build: switch to the legacy (cu126) requirements.

    A GPU that needs CUDA >= 12.8 (sm_120) cannot use the legacy build: then the only fix is a
    newer driver, said as manual steps.
    """
    assert ctx.ot_dir is not None
    gpu = detect_gpu(ctx.probe)
    driver_step = (
        f"update the NVIDIA driver to {platforms.CUDA_FILE_TOOLKIT_DRIVER} or newer "
        "(Ubuntu: sudo ubuntu-drivers install; then reboot)"
    )
    if any(c >= platforms.BLACKWELL_CAPABILITY for c in gpu.compute_caps):
        legacy_cuda = "{}.{}".format(*platforms.LEGACY_FILE_BUILD)
        return FixOutcome(
            check_id,
            False,
            f"{', '.join(gpu.names) or 'this GPU'} needs a CUDA {platforms.BLACKWELL_MIN_CUDA}+ build; the legacy "
            f"requirements (CUDA {legacy_cuda}) cannot run it: {driver_step}",
            (driver_step,),
        )
    legacy = platforms.CUDA_LEGACY
    if not (ctx.ot_dir / legacy).is_file():
        return FixOutcome(check_id, False, f"this checkout has no {legacy}: {driver_step}", (driver_step,))
    drv = f"driver {gpu.driver_version}" if gpu.driver_version else "the driver"
    cuda = f"CUDA {gpu.driver_cuda[0]}.{gpu.driver_cuda[1]}" if gpu.driver_cuda else "an older CUDA"
    return reinstall_torch_fix(
        check_id,
        ctx,
        dry_run,
        legacy,
        f"{drv} supports {cuda}; or {driver_step} to keep {platforms.CUDA_FILE_BUILD_TAG}",
        f"the driver is too old for the {platforms.CUDA_FILE_BUILD_TAG} build",
    )


def _result(found: _Findings, info: GpuInfo, dev: GpuDevice | None, static: Any) -> CheckResult:
    if found.fails:
        summary, fix = found.fails[0]
        more = [s for s, _ in found.fails[1:] + found.warns]
        return CheckResult.fail(
            summary,
            fix=fix,
            details=tuple(found.details + more),
            data=found.data,
            expected="a torch CUDA build the driver supports, with kernels for this GPU",
            why="otherwise torch cannot use the GPU: 'no kernel image is available', "
            "'The NVIDIA driver on your system is too old' or "
            "'Torch not compiled with CUDA enabled'",
        )
    if found.warns:
        summary, fix = found.warns[0]
        return CheckResult.warn(
            summary,
            fix=fix,
            details=tuple(found.details + [s for s, _ in found.warns[1:]]),
            data=found.data,
            expected="a CUDA torch in OneTrainer's venv",
            why="OneTrainer cannot train on the GPU without it",
        )
    torch_desc = f"torch {static['version']}" if static and static.get("version") else "no venv yet"
    return CheckResult.ok(
        f"{torch_desc}; fits driver {info.driver_version} and {dev.name if dev else 'the GPU'}",
        details=tuple(found.details),
        data=found.data,
    )


# What ./install.sh would install here, and whether that build can run on this GPU.
def _judge_launcher(found: _Findings, info: GpuInfo, dev: GpuDevice | None, file: str, reason: str) -> str | None:
    launcher_tag = load_table("cuda_drivers.toml")["onetrainer_builds"].get(file)
    found.details.append(
        f"./install.sh would install {file}" + (f" ({launcher_tag})" if launcher_tag else "") + f": {reason}"
    )
    found.data["launcher_requirements"] = file
    if dev is not None and dev.compute_capability and launcher_tag:
        arch = g.default_arch_list(launcher_tag) or []
        if not g.arch_supports(arch, dev.compute_capability):
            found.fails.append(_launcher_wrong(dev, file, launcher_tag, info))
    return launcher_tag


def _launcher_wrong(dev: GpuDevice, file: str, tag: str, info: GpuInfo) -> tuple[str, Fix]:
    builds = _builds()
    cc = dev.compute_capability_str
    if tag == builds.current and dev.compute_capability and dev.compute_capability < builds.current_min_capability:
        major = g.tag_cuda(tag)[0]
        return (
            f"./install.sh would install {file} ({tag}), which has no kernels for the {dev.name} "
            f"(compute {cc}; CUDA {major} dropped GPUs below {_cc_name(builds.current_min_capability)})",
            Fix(
                f"make the launcher install the CUDA {_cuda_name(builds.legacy)} build instead",
                (f"export OT_PLATFORM_REQUIREMENTS={builds.legacy_file}", "./install.sh"),
            ),
        )
    return (
        f"./install.sh would install {file} ({tag}), which has no kernels for the {dev.name} (compute {cc})",
        Fix(
            f"update the NVIDIA driver to {builds.current_min_driver} or newer, so the launcher picks the "
            f"CUDA {g.tag_cuda(builds.current)[0]} build ({builds.current})",
            (
                "sudo ubuntu-drivers install",
                f"nvidia-smi   # the header must say CUDA Version: {_cuda_name(builds.current)} or newer",
            )
            if not info.wsl
            else ("install the newest NVIDIA driver on Windows",),
        ),
    )


def _judge_venv(
    ctx: Context, found: _Findings, info: GpuInfo, dev: GpuDevice | None, file: str, launcher_tag: str | None
) -> Any:
    """The torch in OneTrainer's venv, judged into FOUND; returns its static facts (None without)."""
    from otdoctor.onetrainer.venv_facts import venv_facts

    vf = venv_facts(ctx)
    static = vf.torch_static if vf is not None and vf.exists else None
    if vf is None or not vf.exists:
        found.details.insert(0, "no OneTrainer venv yet: only the launcher's choice is checked")
    elif not static or not static.get("version"):
        found.warns.append(
            (
                "torch is not installed in OneTrainer's venv",
                Fix("run OneTrainer's installer", (f"cd {shlex.quote(str(ctx.ot_dir))} && ./install.sh",)),
            )
        )
    else:
        _judge_venv_build(ctx, vf.path, found, info, dev, static, file, launcher_tag)
    return static


def _judge_venv_build(
    ctx: Context,
    venv_dir: Path,
    found: _Findings,
    info: GpuInfo,
    dev: GpuDevice | None,
    static: Any,
    file: str,
    launcher_tag: str | None,
) -> None:
    builds = _builds()
    version = str(static.get("version"))
    cuda = static.get("cuda")
    found.data.update(torch_version=version, torch_cuda=cuda)
    reinstall_tag = launcher_tag or builds.current
    # The venv's python, not bin/pip: a moved venv's scripts still point at the old place.
    venv_pip = f"{shlex.quote(str(venv_dir))}/bin/python -m pip"
    reinstall = Fix(
        f"reinstall torch from the {reinstall_tag} index (what {file} names)",
        (f"{venv_pip} install --force-reinstall torch torchvision --index-url {builds.index_url(reinstall_tag)}",),
    )
    if static.get("hip"):
        found.fails.append((f"torch {version} is a ROCm (AMD) build on a machine with an NVIDIA GPU", reinstall))
        return
    tag = g.build_tag(version, cuda)
    if not cuda or tag is None:
        found.fails.append((f"torch {version} is a CPU-only build, but this machine has an NVIDIA GPU", reinstall))
        return
    found.data["torch_build"] = tag
    _judge_driver(found, info, version, tag, venv_pip, launcher_tag or builds.legacy)
    if dev is None or dev.compute_capability is None:
        return
    arch, arch_source = _arch_list(ctx, tag)
    found.details.append(f"{tag} kernels: {' '.join(arch or ['unknown'])} (from {arch_source})")
    found.data["arch_list"] = arch
    if arch and not g.arch_supports(arch, dev.compute_capability):
        cc = dev.compute_capability_str or ""
        found.fails.append(
            (
                f"torch {version} has no kernels for the {dev.name} (compute {cc}, sm_{cc.replace('.', '')}): "
                "'no kernel image is available for execution on the device'",
                _kernel_fix(dev.compute_capability, venv_pip, reinstall),
            )
        )


def _judge_driver(found: _Findings, info: GpuInfo, version: str, tag: str, venv_pip: str, fallback_tag: str) -> None:
    """The driver against the build: the driver's CUDA version must be at least the build's, or the
    same major version (minor-version compatibility)."""
    drv_cuda = info.cuda_driver_version
    if drv_cuda is None:
        return
    major, minor = g.tag_cuda(tag)
    full, compat = g.min_driver(tag, windows=info.wsl)
    driver = f"driver {info.driver_version} (CUDA {info.cuda_driver_version_str})"
    if drv_cuda >= major * 1000 + minor * 10:
        found.details.append(f"{driver} runs {tag} builds")
    elif drv_cuda >= major * 1000:
        found.details.append(
            f"{driver} runs {tag} through CUDA minor-version compatibility; "
            f"{full or 'a newer driver'} or newer is the full match"
        )
    else:
        found.fails.append(
            (
                f"torch {version} ({tag}) needs an NVIDIA driver for CUDA {major}.{minor} "
                f"(>= {full or compat}), this driver {info.driver_version} supports CUDA "
                f"{info.cuda_driver_version_str}: 'The NVIDIA driver on your system is too old'",
                Fix(
                    "update the driver, or install the build the launcher picks for this driver",
                    (
                        "sudo ubuntu-drivers install",
                        f"{venv_pip} install --force-reinstall torch torchvision --index-url "
                        + _builds().index_url(fallback_tag),
                    ),
                ),
            )
        )


def _kernel_fix(capability: tuple[int, int], venv_pip: str, reinstall: Fix) -> Fix:
    """How to get a build with kernels for a GPU of this compute capability."""
    builds = _builds()
    install = f"{venv_pip} install --force-reinstall torch torchvision --index-url "
    if capability >= builds.blackwell_capability:
        return Fix(
            f"install a CUDA {_cuda_name(builds.blackwell)}+ build (Blackwell needs {builds.blackwell} or newer; "
            f"{builds.current} wants driver {builds.current_min_driver}+)",
            (install + builds.index_url(builds.blackwell),),
        )
    if capability < builds.current_min_capability:
        return Fix(
            f"install the CUDA {_cuda_name(builds.legacy)} build (CUDA {g.tag_cuda(builds.current)[0]} dropped GPUs "
            f"below compute {_cc_name(builds.current_min_capability)})",
            (f"export OT_PLATFORM_REQUIREMENTS={builds.legacy_file}", install + builds.index_url(builds.legacy)),
        )
    return reinstall
