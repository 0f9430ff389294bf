"""What the gpu checks share: the machine's NVML answer (memoised per run) and the SKIP for a machine
without an NVIDIA GPU."""

from __future__ import annotations

from otdoctor.engine.check import Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.probe.nvml import GpuInfo, SnapshotError

WHY_DRIVER = (
    "OneTrainer trains on an NVIDIA GPU through CUDA; without a working driver torch runs on the CPU or not at all"
)


def gpu_info(ctx: Context) -> GpuInfo:
    return ctx.memo("gpu", lambda: _read(ctx))


def _read(ctx: Context) -> GpuInfo:
    try:
        return ctx.probe.gpu()
    except SnapshotError as exc:  # one finding about that file (gpu.driver), not a crash of every check
        return exc.info


def no_gpu(ctx: Context, info: GpuInfo) -> CheckResult | None:
    """SKIP when this machine has no NVIDIA GPU at all (a FAIL with --require-gpu)."""
    if info.nvidia_hardware:
        return None
    summary = "no NVIDIA GPU: no NVIDIA device on the PCI bus and no NVIDIA driver"
    if ctx.options.require_gpu:
        return CheckResult.fail(
            summary,
            expected="an NVIDIA GPU with a working driver (--require-gpu)",
            why=WHY_DRIVER,
            fix=Fix(
                "run on a machine with an NVIDIA GPU, or give this container the GPU", ("docker run --gpus all ...",)
            ),
            data={"nvidia_gpu": False},
        )
    return CheckResult.skip(summary, data={"nvidia_gpu": False})
