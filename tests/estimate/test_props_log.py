"""Issue 12: log text for `estimate --from-log` and the live smoke parser, generated and hostile.

Generated logs (real-shaped tqdm bars with any numbers, ANSI codes, `\\r` redraws, junk) go through
`plan.from_log` (what the CLI calls) and through `BarStream` in arbitrary chunks, which must agree
with a whole-text parse. Every outcome is a prediction or a one-line error; the parser's work is
linear, so megabyte lines stay calm. The inputs that once crashed are plain tests at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from otdoctor.errors import UserError
from otdoctor.estimate.plan import from_log
from otdoctor.estimate.progress_bars import BarStream, BarUpdate, parse_text
from tests.estimate.strategies import isolated_env
from tests.support.calm import assert_calm, run_main

NOW = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone.utc)
GUIDE_LINE = "epoch:   2%|▍                                | 3/200 [13:46<11:15:41, 205.79s/it]"

digits = st.text("0123456789", min_size=1, max_size=30) | st.sampled_from(["9" * 5000, "99999999999999999999"])
numbers = digits | st.builds(lambda a, b: f"{a}.{b}", digits, digits) | st.sampled_from(["1e400", "1.2k", "nan", "?"])
clocks = st.sampled_from(["00:03", "13:46", "11:15:41", "2d, 01:00:00", "?", "9" * 5000 + ":00", "1:2"]) | st.builds(
    lambda h, m: f"{h}:{m}", digits, digits
)


@st.composite
def bars(draw: st.DrawFn) -> str:
    desc = draw(st.sampled_from(["epoch", "step", "caching", "", "a: b", "x|y"]))
    pct = draw(st.sampled_from(["", "  2%|▍     | ", "100%|██████████| ", "999%|| "]))
    total = draw(st.none() | numbers)
    counter = draw(numbers) + (f"/{total}" if total is not None else draw(st.sampled_from(["", "it"])))
    rate = draw(numbers) + draw(st.sampled_from(["s/it", "it/s", "B/s", "/s"]))
    remaining = draw(st.none() | clocks)
    postfix = draw(st.sampled_from(["", ", loss=0.1, smooth loss=0.12", ", a=[1]", ", =", ", lr=1e-5"]))
    tail = f"<{remaining}" if remaining is not None else ""
    return f"{desc}{':' if desc else ''}{pct}{counter} [{draw(clocks)}{tail}, {rate}{postfix}]"


junk = st.text(max_size=40) | st.sampled_from(["\x1b[A", "\x1b[32m", "\x1b[0m", "\r", "\n", "]", "[", "Saving x"])
logs = st.lists(bars() | junk, max_size=12).map(lambda parts: "".join(p + ("\r" if len(p) > 3 else "") for p in parts))


@pytest.mark.property
@given(logs)
@example("epoch: 3/99999999999999999999 [00:10<00:10, 2.00s/it]")
@example("epoch: 3/200 [" + "9" * 5000 + ":00<00:10, 2.00s/it]")
@example("epoch: 3/1e400 [00:10<00:10, 2.00s/it]")
@example("step: 0/10 [00:00<?, ?it/s]")
@example("epoch: 5/3 [00:10<00:00, 0.0000000000000000001s/it]")
@example("epoch:1/0 [00:03, 64000000000s/it]\r")
def test_any_log_predicts_or_says_why(text: str) -> None:
    started = time.monotonic()
    try:
        out = from_log(text, now=NOW, final_save_s=30.0)
    except UserError as exc:
        assert exc.exit_code in (1, 2) and "\n" not in exc.message
    else:
        json.dumps(out.to_dict(), allow_nan=False)  # what --format json prints
        remaining = out.prediction.remaining_s
        assert remaining is None or 0 <= remaining <= 100 * 366 * 86400
        assert (out.finish is None) == (remaining is None)
    assert time.monotonic() - started < 1.0


def _last_bars(events: list) -> dict[str, tuple]:
    return {e.desc: (e.n, e.total, e.rate_its, e.postfix) for e in events if isinstance(e, BarUpdate)}


@pytest.mark.property
@given(logs, st.lists(st.integers(1, 512), min_size=1, max_size=20))
def test_stream_in_any_chunks_agrees_with_the_whole_text(text: str, sizes: list[int]) -> None:
    stream = BarStream()
    events: list = []
    at = 0
    for i in range(len(text)):
        size = sizes[i % len(sizes)]
        if at >= len(text):
            break
        events += stream.feed(text[at : at + size], t=float(i))
        at += size
    events += stream.close()
    whole = parse_text(text)
    assert [e for e in events if isinstance(e, str)] == [e for e in whole if isinstance(e, str)]
    assert _last_bars(events) == _last_bars(whole)


LINE_SHAPES = {
    "digits": "9" * 1_000_000,
    "brackets": "[" * 1_000_000,
    "clock heads": "[00:00, 1it/s" * 80_000 + "]",
    "counters": "3/200 [00:01<" * 80_000,
    "pipes": "1%|" * 330_000 + GUIDE_LINE,
    "ansi": "\x1b[" * 500_000,
    "bar then junk": GUIDE_LINE + "x" * 1_000_000,
}


@pytest.mark.parametrize("shape", sorted(LINE_SHAPES))
def test_megabyte_lines_stay_calm(shape: str) -> None:
    # Linear work: each shape of 1 MB, which took minutes when a pattern backtracked, in well under the
    # calm bound; benchmarks/progress_parser.py measures 10 MB (docs/benchmarks.md).
    line = LINE_SHAPES[shape]
    started = time.monotonic()
    events = parse_text(line)
    stream = BarStream()
    for i in range(0, len(line), 4096):
        stream.feed(line[i : i + 4096])
    stream.close()
    assert time.monotonic() - started < 5
    found = [e for e in events if isinstance(e, BarUpdate)]
    assert bool(found) == (GUIDE_LINE in line)
    if found:
        assert found[0].raw == GUIDE_LINE and (found[0].n, found[0].total) == (3, 200)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path)


def test_only_the_tail_of_a_long_log_is_read(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "train.log"
    with log.open("w") as f:
        f.write("epoch:   1%|▏ | 1/200 [00:10<00:10, 9.00s/it]\r")  # beyond the 4 MB tail: never read
        f.write(("Loading weights " * 40 + "\n") * 10_000)
        f.write(GUIDE_LINE + "\r")
    assert log.stat().st_size > 6_000_000
    run = run_main(["estimate", "--from-log", str(log), "--format", "json"], env)
    assert_calm(run, limit_s=2.0)
    data = json.loads(run.out)
    assert (data["epoch"], data["epochs"]) == (3, 200) and data["remaining_s"] == pytest.approx(197 * 205.79)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_from_log_must_be_a_regular_file(tmp_path: Path, env: dict[str, str], kind: str) -> None:
    path = {"fifo": tmp_path / "log.fifo", "device": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    run = run_main(["estimate", "--from-log", str(path)], env)
    assert_calm(run, limit_s=2.0)  # a FIFO blocked forever, /dev/zero read until MemoryError
    assert run.code == 2 and run.err.splitlines() == [
        f"otdoctor: error: --from-log {path} is not a regular file (a log file, or - for stdin)"
    ]


@pytest.mark.parametrize(
    "line,said",
    [
        ("epoch: 3/99999999999999999999 [00:10<00:10, 2.00s/it]", "remaining: unknown (the bars give 6.34e+12 years"),
        ("epoch: 3/200 [" + "9" * 5000 + ":00<00:10, 2.00s/it]", "no OneTrainer progress bar"),
        ("epoch: 3/1e400 [00:10<00:10, 2.00s/it]", "no OneTrainer progress bar"),
    ],
)
def test_once_crashing_logs(tmp_path: Path, env: dict[str, str], line: str, said: str) -> None:
    log = tmp_path / "train.log"
    log.write_text(line + "\n")
    run = run_main(["estimate", "--from-log", str(log)], env)
    assert_calm(run, limit_s=2.0)
    assert said in run.out + run.err


@pytest.mark.property
@settings(max_examples=30)
@given(logs)
def test_end_to_end_from_log(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    folder = tmp_path_factory.mktemp("log")
    (folder / "train.log").write_text(text, encoding="utf-8", errors="surrogatepass")
    env = isolated_env(folder)
    for fmt in ("text", "json"):
        run = run_main(["estimate", "--from-log", str(folder / "train.log"), "--format", fmt], env)
        assert_calm(run, limit_s=2.0)
