"""`otdoctor.redact.redact` on one 10 MB line, of kinds that made the old patterns quadratic.

    .venv/bin/python benchmarks/redact.py [--mb 10] [--repeat 3] [--detect-secrets PYTHON]

Every text otdoctor prints or writes passes through `redact`, and a log or a report can be one
very long line. Prints the best of --repeat wall-clock times for each kind of line, the CPU seconds
(which other load on the machine disturbs less) and the number of masks it made. Target (issue 12):
every line under 1 s at 10 MB.

With --detect-secrets PYTHON (an interpreter of a venv that has `detect-secrets` installed, kept
out of otdoctor's own), times Yelp's detect-secrets `scan_line` with its default plugins on 1 MB of a
report (a real `otdoctor check --format json`, repeated), for the comparison in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import string
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otdoctor.redact import MASK, redact  # noqa: E402


def _report_text() -> str:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("otdoctor")), "check", "--format", "json", "--offline"],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    return proc.stdout


def _random_printable(n: int) -> str:
    rng = random.Random(12)
    return "".join(rng.choices(string.printable[:94] + " ", k=n))


def lines(n: int) -> dict[str, Callable[[], str]]:
    """Each kind of line, made on demand (a few are slow to build)."""

    def fill(unit: str) -> str:
        return (unit * (n // len(unit) + 1))[:n]

    return {
        "one letter repeated": lambda: "a" * n,
        '`"key": "` repeated': lambda: fill('"key": "'),
        "`--token ` repeated": lambda: fill("--token "),
        "`token` repeated": lambda: fill("token"),
        "`OT_CUSTOM_PASS=x ` repeated": lambda: fill("OT_CUSTOM_PASS=x "),
        "`https://u:p@h/ --password=hunter2 ` repeated": lambda: fill("https://u:p@h/ --password=hunter2 "),
        "`mysql ` repeated": lambda: fill("mysql "),
        "`curl -u u:p mysql -pX ` repeated": lambda: fill("curl -u u:p mysql -pX "),
        "`password: x db_pwd=y --pw z ` repeated": lambda: fill("password: x db_pwd=y --pw z "),
        "random printable ASCII": lambda: _random_printable(n),
        "non-ASCII (é)": lambda: "é" * n,
        "a check report (JSON) on one line": lambda: fill(_report_text().replace("\n", " ")),
    }


def _best(text: str, repeat: int) -> tuple[float, float, int]:
    """Best wall-clock and best CPU seconds (others' load on the machine disturbs CPU time less)."""
    wall = cpu = float("inf")
    out = ""
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = redact(text)
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, out.count(MASK)


_DETECT = textwrap.dedent(
    """
    import sys, time
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings
    text = sys.stdin.read()
    with default_settings():
        start = time.perf_counter()
        found = sum(1 for line in text.splitlines() for _ in scan_line(line))
        print(f"{time.perf_counter() - start:.2f} {found}")
    """
)


def detect_secrets(python: str) -> None:
    report = _report_text()
    text = (report * (1_000_000 // len(report) + 1))[:1_000_000]
    proc = subprocess.run([python, "-c", _DETECT], input=text, capture_output=True, text=True, check=True)
    seconds, found = proc.stdout.split()
    start = time.perf_counter()
    redact(text)
    ours = time.perf_counter() - start
    lines = text.count("\n")
    print(f"detect-secrets scan_line, 1 MB report ({lines} lines): {float(seconds):.2f} s, {found} findings")
    print(f"otdoctor redact, same 1 MB report: {ours:.3f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--detect-secrets", metavar="PYTHON")
    args = ap.parse_args()
    n = int(args.mb * 1_000_000)
    print(f"redact on one {args.mb:g} MB line, best of {args.repeat}:")
    print("    wall      CPU      masks  line")
    for name, make in lines(n).items():
        wall, cpu, masks = _best(make(), args.repeat)
        print(f"  {wall:6.3f} s {cpu:6.3f} s {masks:>9}  {name}")
    if args.detect_secrets:
        detect_secrets(args.detect_secrets)


if __name__ == "__main__":
    main()
