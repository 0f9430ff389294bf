"""Recorded NVML snapshots (tests/data/nvml) loaded, edited to list real PIDs, and written back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support import NVML_DATA

GIB = 1024**3


def load(name: str) -> dict[str, Any]:
    return json.loads((NVML_DATA / f"{name}.json").read_text())


def write(tmp_path: Path, snap: dict[str, Any], name: str = "snap.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(snap))
    return path


def put_processes(snap: dict[str, Any], kind: str, procs: list[tuple[int, int | None]], device: int = 0) -> None:
    """Let NVML report these real PIDs (they vanish from NVML when the process exits, as with the driver)."""
    key = f"nvmlDeviceGet{'Compute' if kind == 'compute' else 'Graphics'}RunningProcesses"
    entries = snap["devices"][device][key]["value"]
    for i, (pid, used) in enumerate(procs):
        obj = {
            "pid": pid,
            "usedGpuMemory": used,
            "gpuInstanceId": 0xFFFFFFFF,
            "computeInstanceId": 0xFFFFFFFF,
            "_local": True,
        }
        if i < len(entries):
            obj["usedGpuMemory"] = entries[i]["__object__"]["usedGpuMemory"] if used == "keep" else used
            entries[i] = {"__object__": obj}
        else:
            entries.append({"__object__": obj})
