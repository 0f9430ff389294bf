"""The tqdm progress-bar parser (`otdoctor.estimate.progress_bars`) on one 10 MB line, of kinds that
made the old pattern quadratic.

    .venv/bin/python benchmarks/progress_parser.py [--mb 10] [--repeat 3]

`otdoctor estimate --from-log` and the live `otdoctor smoke` output go through this parser, and a
log can hold one enormous line (a pasted tensor, a garbled terminal). Prints, for each kind of line,
the best of --repeat wall-clock and CPU seconds (CPU: what other load on the machine disturbs less)
of a whole-text parse and of the live stream fed in 4 KiB chunks, and the bars found. Target
(issue 12): every line under 1 s at 10 MB.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otdoctor.estimate.progress_bars import BarStream, BarUpdate, parse_text  # noqa: E402

GUIDE_LINE = "epoch:   2%|▍                                | 3/200 [13:46<11:15:41, 205.79s/it]"


def lines(n: int) -> dict[str, Callable[[], str]]:
    def fill(unit: str) -> str:
        return (unit * (n // len(unit) + 1))[:n]

    return {
        "digits (the 20,000-digit report)": lambda: "9" * n,
        "`[` repeated": lambda: "[" * n,
        "`[00:00, 1it/s` repeated, then `]`": lambda: fill("[00:00, 1it/s") + "]",
        "`[1:00<1:00, 1` repeated": lambda: fill("[1:00<1:00, 1"),
        "`3/200 [00:01<` repeated": lambda: fill("3/200 [00:01<"),
        "`1%|` repeated, then a bar": lambda: fill("1%|") + GUIDE_LINE,
        "ANSI `\\x1b[` repeated": lambda: fill("\x1b["),
        "a bar, then plain text": lambda: GUIDE_LINE + "x" * n,
    }


# Not one line: a log of as many bar redraws as fit, for the cost per bar (not held to the target).
MANY_BARS = "bars and text, one line per 96 bytes"


def _stream(text: str) -> list[object]:
    stream = BarStream()
    events: list[object] = []
    for i in range(0, len(text), 4096):
        events += stream.feed(text[i : i + 4096])
    return events + stream.close()


def _best(run: Callable[[], list[object]], repeat: int) -> tuple[float, float, int]:
    best_wall = best_cpu = float("inf")
    bars = 0
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        events = run()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        bars = sum(isinstance(e, BarUpdate) for e in events)
    return best_wall, best_cpu, bars


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = int(args.mb * 1_000_000)
    print(f"one line of {n:,} characters; best of {args.repeat}; Python {sys.version.split()[0]}")
    print(f"{'line':42} {'parse_text wall/cpu':>20} {'stream 4 KiB wall/cpu':>22} {'bars':>7}")
    worst = 0.0
    for name, make in lines(n).items():
        text = make()
        whole = _best(lambda text=text: parse_text(text), args.repeat)
        live = _best(lambda text=text: _stream(text), args.repeat)
        worst = max(worst, whole[0], live[0])
        print(f"{name:42} {whole[0]:9.3f}/{whole[1]:.3f} s {live[0]:11.3f}/{live[1]:.3f} s {whole[2]:7}")
    print(f"slowest line: {worst:.3f} s wall ({'under' if worst < 1 else 'OVER'} the 1 s target)")
    text = ((GUIDE_LINE + " Saving /tmp/x\n") * (n // 96 + 1))[:n]
    whole, live = _best(lambda: parse_text(text), args.repeat), _best(lambda: _stream(text), args.repeat)
    print(f"{MANY_BARS:42} {whole[0]:9.3f}/{whole[1]:.3f} s {live[0]:11.3f}/{live[1]:.3f} s {whole[2]:7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
