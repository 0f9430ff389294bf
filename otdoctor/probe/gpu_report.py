"""The GPU part of a bug report: an NVML snapshot a maintainer can replay, and `nvidia-smi -q`.

The snapshot is taken through `nvml_snapshot.RecordingNvml` (or replayed from the recorded
snapshot named by `$OTDOCTOR_NVML_SNAPSHOT`, which is how tests and demos give otdoctor a GPU),
so the file in the bundle has exactly the format the GPU tests load: a maintainer can run
`OTDOCTOR_NVML_SNAPSHOT=nvml-snapshot.json otdoctor check` and see what the user's machine said.
Serial numbers and UUIDs are never asked for (and are cut from `nvidia-smi -q`): they identify a
card, and no diagnosis needs them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otdoctor.probe import Probe

SNAPSHOT_ENV = "OTDOCTOR_NVML_SNAPSHOT"
_IDENTIFYING = re.compile(r"(?im)^(\s*(?:Serial Number|GPU UUID|Board Id|GPU Part Number|Module ID)\s*:\s*).*$")


def collect(probe: Probe) -> tuple[dict[str, Any], dict[str, str]]:
    """(summary for the Markdown, files for the bundle), read through `otdoctor.probe.nvml`."""
    import pynvml

    from otdoctor.probe import nvml, nvml_snapshot
    from otdoctor.probe.files import read_regular_bytes

    files: dict[str, str] = {}
    snapshot_path = probe.env.get(SNAPSHOT_ENV)
    if snapshot_path:  # a replayed machine: the recording itself is the evidence
        try:
            raw = read_regular_bytes(Path(snapshot_path), nvml_snapshot.MAX_SNAPSHOT_BYTES)  # never a FIFO
            files["nvml-snapshot.json"] = raw.decode("utf-8", "replace")
        except OSError as exc:
            files["gpu.txt"] = f"{SNAPSHOT_ENV}={snapshot_path}: {exc}\n"
    else:
        # The same calls the GPU checks make, written down in the format the tests replay.
        recorder = nvml_snapshot.RecordingNvml(pynvml)
        nvml.read_nvml(recorder)
        files["nvml-snapshot.json"] = json.dumps(recorder.snapshot, indent=1) + "\n"
    try:
        info = probe.gpu()
    except nvml.SnapshotError as exc:  # a bad snapshot is a fact in the bundle, not a failed report
        info = exc.info
    files["gpu.json"] = json.dumps(nvml.to_jsonable(info), indent=1, default=str) + "\n"
    if info.nvidia_smi and not snapshot_path:
        smi = probe.run([info.nvidia_smi, "-q"], timeout_s=20)
        files["nvidia-smi.txt"] = (
            _IDENTIFYING.sub(r"\1(removed)", smi.stdout) if smi.ok else smi.describe_failure() + "\n"
        )
    summary: dict[str, Any] = {
        "source": {"nvml": "NVML snapshot" if snapshot_path else "NVML"}.get(info.source, info.source),
        "driver_version": info.driver_version,
        "cuda_driver_version": info.cuda_driver_version_str,
        "devices": [
            {
                "index": d.index,
                "name": d.name,
                "total_bytes": d.memory_total_bytes,
                "free_bytes": d.memory_free_bytes,
                "used_bytes": d.memory_used_bytes,
                "compute_capability": d.compute_capability_str,
                "processes": len(d.processes),
            }
            for d in info.devices
        ],
    }
    if info.problem is not None and not info.devices:
        summary["error"] = f"{info.problem.message}: {info.problem.meaning}"
    return summary, files
