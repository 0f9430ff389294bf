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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otdoctor.probe import Probe

SNAPSHOT_ENV = "OTDOCTOR_NVML_SNAPSHOT"
_IDENTIFYING = re.compile(r"(?im)^(\s*(?:Serial Number|GPU UUID|Board Id|GPU Part Number|Module ID)\s*:\s*).*$")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _call(nvml: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """An NVML call that answers None when this driver (or snapshot) cannot."""
    import pynvml

    fn = getattr(nvml, name, None)
    if fn is None:
        return None
    try:
        return fn(*args, **kwargs)
    except pynvml.NVMLError:
        return None


def _memory(nvml: Any, handle: Any) -> Any:
    import pynvml

    version = getattr(pynvml, "nvmlMemory_v2", None)
    if version is not None:
        mem = _call(nvml, "nvmlDeviceGetMemoryInfo", handle, version=version)
        if mem is not None:
            return mem
    return _call(nvml, "nvmlDeviceGetMemoryInfo", handle)


def _query(nvml: Any) -> dict[str, Any]:
    import pynvml

    try:
        nvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"devices": [], "error": f"NVML: {exc}"}
    try:
        cuda = _call(nvml, "nvmlSystemGetCudaDriverVersion_v2") or _call(nvml, "nvmlSystemGetCudaDriverVersion")
        out: dict[str, Any] = {
            "driver_version": _text(_call(nvml, "nvmlSystemGetDriverVersion") or "") or None,
            "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
            "devices": [],
        }
        count = _call(nvml, "nvmlDeviceGetCount") or 0
        for index in range(int(count)):
            handle = _call(nvml, "nvmlDeviceGetHandleByIndex", index)
            if handle is None:
                continue
            mem = _memory(nvml, handle)
            cc = _call(nvml, "nvmlDeviceGetCudaComputeCapability", handle)
            out["devices"].append({
                "index": index,
                "name": _text(_call(nvml, "nvmlDeviceGetName", handle) or "unknown"),
                "total_bytes": int(mem.total) if mem is not None else None,
                "free_bytes": int(mem.free) if mem is not None else None,
                "used_bytes": int(mem.used) if mem is not None else None,
                "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
            })
        return out
    finally:
        try:
            nvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _nvidia_smi_summary(probe: Probe) -> dict[str, Any] | None:
    """`nvidia-smi --query-gpu=index,name,memory.total,memory.free,memory.used,driver_version`."""
    res = probe.run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free,memory.used,driver_version,"
                     "compute_cap", "--format=csv,noheader,nounits"], timeout_s=15)
    if not res.ok:
        return None
    devices, driver = [], None
    mib = 1024 * 1024
    for line in res.stdout.splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 6:
            continue

        def num(s: str) -> int | None:
            return int(float(s)) * mib if re.fullmatch(r"[0-9.]+", s) else None

        driver = cols[5]
        devices.append({"index": int(cols[0]) if cols[0].isdigit() else len(devices), "name": cols[1],
                        "total_bytes": num(cols[2]), "free_bytes": num(cols[3]), "used_bytes": num(cols[4]),
                        "compute_capability": cols[6] if len(cols) > 6 else None})
    return {"driver_version": driver, "cuda_driver_version": None, "devices": devices}


def collect(probe: Probe) -> tuple[dict[str, Any], dict[str, str]]:
    """(summary, files for the bundle)."""
    from otdoctor.probe import nvml_snapshot

    files: dict[str, str] = {}
    summary: dict[str, Any] = {"source": None, "driver_version": None, "cuda_driver_version": None, "devices": []}
    snapshot_path = probe.env.get(SNAPSHOT_ENV)
    nvml_error = None
    if snapshot_path:
        try:
            fake = nvml_snapshot.FakeNvml.from_file(snapshot_path)
        except (OSError, ValueError) as exc:
            nvml_error = f"{SNAPSHOT_ENV}: {exc}"
        else:
            summary.update(_query(fake), source="NVML snapshot")
            raw = json.loads(open(snapshot_path, encoding="utf-8").read())
            raw.pop("host", None)  # recorded host facts (names) belong to the recording machine
            files["nvml-snapshot.json"] = json.dumps(raw, indent=1) + "\n"
    else:
        import pynvml

        recorder = nvml_snapshot.RecordingNvml(pynvml)
        answer = _query(recorder)
        if answer.get("error"):
            nvml_error = answer["error"]
        else:
            summary.update(answer, source="NVML")
            files["nvml-snapshot.json"] = json.dumps(recorder.snapshot, indent=1) + "\n"

    smi = probe.run(["nvidia-smi", "-q"], timeout_s=20)
    if smi.ok:
        files["nvidia-smi.txt"] = _IDENTIFYING.sub(r"\1(removed)", smi.stdout)
        if summary["source"] is None:
            parsed = _nvidia_smi_summary(probe)
            if parsed:
                summary.update(parsed, source="nvidia-smi")
    elif not smi.missing:
        files["nvidia-smi.txt"] = smi.describe_failure() + "\n" + smi.stderr
    if summary["source"] is None:
        reasons = [r for r in (nvml_error, "nvidia-smi not found" if smi.missing else smi.describe_failure()) if r]
        summary["error"] = "; ".join(reasons)
        files.setdefault("gpu.txt", "No NVIDIA GPU could be read:\n" + "\n".join(reasons) + "\n")
    return summary, files
