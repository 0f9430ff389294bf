"""`otdoctor gpu`: the GPUs and who holds their memory."""

from __future__ import annotations

from typing import Annotated

import typer

from otdoctor.cli.options import TEXT_JSON, format_option


def gpu_cmd(
    fmt: Annotated[str, format_option(TEXT_JSON, "Output format: text or json.")] = "text",
) -> None:
    """Show the NVIDIA GPUs and every process holding GPU memory, with its user and full command line.

    Like the lower half of nvidia-smi, plus who owns each process. Memory NVML cannot report
    (Windows WDDM, WSL) shows as unknown. Set OTDOCTOR_NVML_SNAPSHOT=FILE to show a recorded
    machine (scripts/record_nvml.py makes one). Exit code 1 when no NVIDIA GPU can be read.
    """
    from otdoctor.gpu.reasoning import holders, invisible_explanation
    from otdoctor.probe import Probe
    from otdoctor.render.emit import emit
    from otdoctor.render.gpu import GpuView

    probe = Probe()
    info = probe.gpu()
    emit(GpuView(info, holders(info, probe.process), probe.current_user(), invisible_explanation(info)), fmt)
    raise typer.Exit(0 if info.devices else 1)
