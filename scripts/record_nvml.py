"""Record this machine's NVML answers into a snapshot that otdoctor can replay anywhere.

Run it on the machine with the GPU (needs only otdoctor installed, no root):

    python scripts/record_nvml.py > my-gpu.json
    python scripts/record_nvml.py -o tests/data/nvml/recorded-h100.json --note "lab H100, idle"

Then, on any machine, `OTDOCTOR_NVML_SNAPSHOT=my-gpu.json otdoctor check` (or `otdoctor gpu`)
diagnoses the recorded GPU. The snapshot holds every pynvml call otdoctor's adapter makes, with
its raw answer (or NVML error code), plus the host facts the GPU checks read (NVIDIA PCI devices,
/dev/nvidia0, WSL, container). PIDs of processes using the GPU are recorded; their command
lines are not (they are read live), so nothing secret lands in the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path


def record(note: str = "") -> dict:
    import pynvml

    from otdoctor.probe import host
    from otdoctor.probe.nvml import nvidia_pci_devices, read_nvml
    from otdoctor.probe.nvml_snapshot import RecordingNvml

    rec = RecordingNvml(pynvml)
    driver, cuda, devices, _problems, problem = read_nvml(rec)
    plat = host.platform_info()
    snap = rec.snapshot
    try:
        from importlib.metadata import version

        pynvml_version = version("nvidia-ml-py")
    except Exception:  # noqa: BLE001 - informational only
        pynvml_version = None
    snap["recorded"] = {
        "description": note or ", ".join(d.name for d in devices) or (problem.kind if problem else "no GPU"),
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": f"{plat.system} {plat.release} {plat.machine}",
        "python": platform.python_version(),
        "pynvml": f"nvidia-ml-py {pynvml_version}",
    }
    snap["host"] = {
        "nvidia_pci_devices": list(nvidia_pci_devices()),
        "dev_nvidia0": os.path.exists("/dev/nvidia0"),
        "wsl": plat.wsl,
        "container": plat.container,
    }
    # Keep the keys in the order the snapshot format expects, for readable diffs.
    return {k: snap[k] for k in ("format", "recorded", "host", "system", "devices")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record NVML answers into an otdoctor snapshot (JSON).")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout (atomically)")
    parser.add_argument("--note", default="", help="a description stored in the snapshot")
    args = parser.parse_args(argv)
    text = json.dumps(record(args.note), indent=1) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from otdoctor.probe.files import atomic_write_text

    atomic_write_text(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
