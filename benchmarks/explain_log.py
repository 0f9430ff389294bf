"""`otdoctor explain` on one 10 MB line, of kinds that drive regular expressions into slow paths.

    .venv/bin/python benchmarks/explain_log.py [--mb 10] [--repeat 3]

A log can be one very long line (a tqdm bar without newlines, a binary-ish dump). For each kind of
line, prints the best of --repeat times of `explain_text` (all known problems) and of
`last_error_line`, CPU and wall, and the problems found. It also times the same search without the
one-pass screening (each problem searched on its own), the fallback the matcher uses if RE2 ever
gives up on the screening scan. Target (issue 12): linear, under 1 s at 10 MB.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otdoctor.explain.known_problems import explain_text, last_error_line, log_bytes  # noqa: E402
from otdoctor.explain.matcher import brute_force_positions  # noqa: E402


def _random_printable(n: int) -> str:
    rng = random.Random(12)
    return "".join(rng.choices(string.printable[:94] + " ", k=n))


def lines(n: int) -> dict[str, Callable[[], str]]:
    def rep(unit: str) -> str:
        return (unit * (n // len(unit) + 1))[:n]

    return {
        "one letter repeated": lambda: "x" * n,
        "`No module named '` repeated": lambda: rep("No module named '"),
        "tqdm step bar repeated (no newline)": lambda: rep("step:  12%|█▏   | 9/72 [00:31<03:39, 13.49s"),
        "`ERROR: ` repeated": lambda: rep("ERROR: "),
        "quoted path with spaces repeated": lambda: rep('"C:\\My Folder\\x '),
        # One quote, then words: the old Python pattern for a space in a venv path was quadratic here.
        '`"/` then `a ` repeated': lambda: '"/' + rep("a ")[2:],
        "random printable ASCII": lambda: _random_printable(n),
        "non-ASCII (`é`)": lambda: "é" * (n // 2),
        "a training log on one line, OOM at the end": lambda: (
            rep("loss=0.1 step 9/72 [00:31<03:39, 3.49s/it] ") + "torch.OutOfMemoryError: CUDA out of memory"
        ),
    }


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    cpu = wall = float("inf")
    result: object = None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall, result


def row(name: str, text: str, repeat: int) -> str:
    cpu, wall, found = best(lambda: [m.problem.id for m in explain_text(text)], repeat)
    last_cpu, _, _ = best(lambda: last_error_line(text), repeat)
    data = log_bytes(text)
    alone_cpu, _, _ = best(lambda: brute_force_positions(data), 1)
    shown = ", ".join(found) if isinstance(found, list) and found else "-"
    return f"| {name} | {cpu:.2f} s | {wall:.2f} s | {last_cpu:.2f} s | {alone_cpu:.2f} s | {shown} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = int(args.mb * 1024 * 1024)
    print(f"| {args.mb:g} MB line | explain CPU | wall | last error line CPU | each problem alone CPU | found |")
    print("|---|---|---|---|---|---|")
    for name, make in lines(n).items():
        print(row(name, make(), args.repeat))


if __name__ == "__main__":
    main()
