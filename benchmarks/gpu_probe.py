"""How long the GPU part of `otdoctor check` takes: NVML read + process details, and the whole
`otdoctor check --only gpu` / `otdoctor gpu` commands, against the snapshots in tests/data/nvml.

    .venv/bin/python benchmarks/gpu_probe.py

Replayed snapshots measure otdoctor's own work (adapter, psutil lookups, checks, rendering); on a
real GPU NVML adds its own time (nvmlInit is typically tens of ms, more with persistence mode off).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "nvml"
EXE = str(Path(sys.executable).parent / "otdoctor")


def per_call_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import json

    from otdoctor.probe import Probe

    print(
        f"{'snapshot':<18} {'probe.gpu() ms':>15} {'checks ms (in-process)':>23} "
        f"{'check cmd ms':>13} {'gpu cmd ms':>11}"
    )
    for name in ("h100-idle", "rtx4090-desktop", "container-a100", "no-gpu"):
        env = {**os.environ, "OTDOCTOR_NVML_SNAPSHOT": str(DATA / f"{name}.json"), "NO_COLOR": "1"}
        probe = Probe(env=env)
        probe_ms = per_call_ms(probe.gpu, 50)
        inner: list[float] = []

        def check(env: dict[str, str] = env, inner: list[float] = inner) -> None:
            out = subprocess.run(
                [EXE, "check", "--only", "gpu", "--format", "json"], env=env, capture_output=True, text=True
            )
            inner.append(json.loads(out.stdout)["duration_s"] * 1000)

        check_ms = per_call_ms(check, 5)
        gpu_ms = per_call_ms(lambda env=env: subprocess.run([EXE, "gpu"], env=env, capture_output=True), 5)
        print(f"{name:<18} {probe_ms:>15.2f} {statistics.median(inner):>23.0f} {check_ms:>13.0f} {gpu_ms:>11.0f}")


if __name__ == "__main__":
    main()
