"""`otdoctor check` against `python -m torch.utils.collect_env`, in the same OneTrainer-shaped venv.

    .venv/bin/python benchmarks/check_vs_collect_env.py [--repeat 7] [--dir ~/.cache/otdoctor-bench]

Builds (once, then reuses) a OneTrainer-shaped git checkout under --dir whose `venv/` is a real
Python 3.11 venv with CPU torch 2.13.0 (pip takes the wheel on this machine's disk) and whose
requirements-global.txt names what is installed. Then runs the two commands --repeat times,
interleaved so both see the same machine load, after one untimed warm-up each (otdoctor caches
what `import torch` says on disk; collect_env fills the OS page cache), plus three first runs with
an empty otdoctor cache. Prints wall-clock median and min, and the CPU seconds a run used (user +
system, child processes included), which other load on the machine disturbs less than wall time.
Target (issue 2): otdoctor check under 1 s, and at most a quarter of collect_env's time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.factory import git, make_onetrainer, make_venv, pyenv_python  # noqa: E402

TORCH = "torch==2.13.0"


def build(base: Path) -> Path:
    ot = base / "OneTrainer"
    venv = ot / "venv"
    python = pyenv_python("3.11")
    if not (ot / "scripts" / "train.py").is_file():
        make_onetrainer(ot, python_version=python.parent.parent.name)
    if not (venv / "bin" / "activate").is_file():
        print(f"building {venv} with {TORCH} (once)...", file=sys.stderr)
        make_venv(venv, python)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", TORCH], check=True)
    # Name exactly what is installed, as a healthy `install.sh` leaves it.
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    req = ot / "requirements-global.txt"
    if req.read_text() != freeze:
        req.write_text(freeze)
        git(ot, "commit", "-q", "-am", "requirements as installed")  # a clean checkout, as cloned
    return ot


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command and the processes it waited for)."""
    cpu0 = _children_cpu_s()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv)} exited with {proc.returncode}:\n{proc.stderr.decode(errors='replace')}")
    return wall, _children_cpu_s() - cpu0


def timed(
    commands: list[list[str]], env: dict[str, str], cwd: Path, repeat: int
) -> list[tuple[list[float], list[float]]]:
    """Each command `repeat` times, interleaved (A B A B ...) so both see the same machine load."""
    for argv in commands:
        subprocess.run(argv, env=env, cwd=cwd, capture_output=True)  # warm-up, not timed
    results: list[tuple[list[float], list[float]]] = [([], []) for _ in commands]
    for _ in range(repeat):
        for argv, (walls, cpus) in zip(commands, results, strict=True):
            wall, cpu = _once(argv, env, cwd)
            walls.append(wall)
            cpus.append(cpu)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path.home() / ".cache" / "otdoctor-bench")
    parser.add_argument("--otdoctor", default=str(Path(sys.executable).parent / "otdoctor"))
    args = parser.parse_args()

    ot = build(args.dir.expanduser())
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("OT_DIR", None)
    check_argv = [args.otdoctor, "check", "--ot-dir", str(ot)]
    collect_argv = [str(ot / "venv" / "bin" / "python"), "-m", "torch.utils.collect_env"]
    check, collect = timed([check_argv, collect_argv], env, ot, args.repeat)
    # Cold: an empty otdoctor cache, so the venv's interpreter, pip and `import torch` run again.
    cold = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            subprocess.run(check_argv, env={**env, "OTDOCTOR_CACHE_DIR": cache}, cwd=ot, capture_output=True)
            cold.append(time.perf_counter() - start)

    load = os.getloadavg()[0]
    print(f"OneTrainer-shaped checkout: {ot} (venv: Python 3.11, {TORCH} CPU)")
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} at the end (other work on the machine inflates wall time)")
    print(f"{'command':36} {'wall median':>12} {'wall min':>9} {'CPU median':>11}   (n={args.repeat}, seconds)")
    for name, (walls, cpus) in (("otdoctor check", check), ("python -m torch.utils.collect_env", collect)):
        print(f"{name:36} {statistics.median(walls):12.3f} {min(walls):9.3f} {statistics.median(cpus):11.3f}")
    print(
        f"{'otdoctor check, empty cache (first run)':36} {statistics.median(cold):12.3f} {min(cold):9.3f} "
        f"{'':>11}   (n=3)"
    )
    ratio = statistics.median(check[0]) / statistics.median(collect[0])
    print(f"otdoctor check / collect_env (wall median): {ratio:.2f}  (target: <= 0.25, and otdoctor check < 1 s)")


if __name__ == "__main__":
    main()
