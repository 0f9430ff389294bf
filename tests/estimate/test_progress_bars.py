"""The tqdm parser on output written by real tqdm: both rate forms, \\r redraws, colour, postfix."""

from __future__ import annotations

import io
import time

import pytest
from tqdm import tqdm

from otdoctor.estimate.progress_bars import BarStream, BarUpdate, parse_bar, parse_clock, parse_text

GUIDE_LINE = "epoch:   2%|▍                                | 3/200 [13:46<11:15:41, 205.79s/it]s=0.122]"


def bars(events):
    return [e for e in events if isinstance(e, BarUpdate)]


def test_guide_line_parses():
    bar = parse_bar(GUIDE_LINE)
    assert bar is not None
    assert bar.desc == "epoch"
    assert (bar.n, bar.total) == (3, 200)
    assert bar.elapsed_s == 13 * 60 + 46
    assert bar.remaining_s == 11 * 3600 + 15 * 60 + 41
    assert bar.s_per_it == pytest.approx(205.79)


def test_clock_formats():
    assert parse_clock("00:03") == 3
    assert parse_clock("11:15:41") == 40541
    assert parse_clock("2d, 01:00:00") == 2 * 86400 + 3600
    assert parse_clock("?") is None


def test_real_tqdm_fast_bar_with_colour_and_postfix():
    buf = io.StringIO()
    bar = tqdm(total=5, desc="step", file=buf, mininterval=0, colour="green")
    for i in range(5):
        bar.set_postfix({"loss": f"{0.1 * i:.4f}", "smooth loss": "0.1234"}, refresh=False)
        bar.update(1)
    bar.close()
    raw = buf.getvalue()
    assert "\r" in raw and "\x1b[" in raw  # the real thing: redraws and colour codes
    got = bars(parse_text(raw))
    assert [b.n for b in got][:6] == [0, 1, 2, 3, 4, 5]
    assert all(b.desc == "step" and b.total == 5 for b in got)
    assert got[-1].postfix == {"loss": "0.4000", "smooth loss": "0.1234"}
    assert got[-1].rate_its is not None and got[-1].rate_its > 1  # shown as it/s


def test_real_tqdm_slow_bar_shows_seconds_per_iteration():
    buf = io.StringIO()
    bar = tqdm(total=2, desc="epoch", file=buf, mininterval=0, smoothing=1)
    for _ in range(2):
        time.sleep(1.05)
        bar.update(1)
    bar.close()
    raw = buf.getvalue()
    assert "s/it" in raw
    last = bars(parse_text(raw))[-1]
    assert last.n == 2
    assert 1 / last.rate_its == pytest.approx(1.05, abs=0.1)


def test_stream_split_mid_bar_and_text_lines():
    buf = io.StringIO()
    for _ in tqdm(iter(range(3)), desc="caching", file=buf, mininterval=0):  # no len: no total
        pass
    raw = "Loading model...\n" + buf.getvalue() + "\nSaving /tmp/x.safetensors\n"
    stream = BarStream()
    events = []
    for i in range(0, len(raw), 7):  # arbitrary chunk boundaries, as a pipe delivers them
        events += stream.feed(raw[i : i + 7], t=float(i))
    events += stream.close()
    texts = [e for e in events if isinstance(e, str)]
    assert texts == ["Loading model...", "Saving /tmp/x.safetensors"]
    got = bars(events)
    assert [b.n for b in got][-1] == 3 and got[0].desc == "caching" and got[0].total is None


def test_nested_bars_with_cursor_moves():
    buf = io.StringIO()
    for _ in tqdm(range(2), desc="epoch", file=buf, mininterval=0, position=0):
        for _ in tqdm(range(3), desc="step", file=buf, mininterval=0, position=1, leave=False):
            pass
    got = bars(parse_text(buf.getvalue()))
    assert {b.desc for b in got} == {"epoch", "step"}
    assert max(b.n for b in got if b.desc == "epoch") == 2
    assert max(b.n for b in got if b.desc == "step") == 3


def test_not_a_bar():
    assert parse_bar("RuntimeError: something [broken, here]") is None
    assert parse_bar("") is None


@pytest.mark.parametrize("nested", [False, True])
def test_a_redraw_is_reported_when_it_arrives_not_at_the_next_one(nested):
    # tqdm writes "\r<bar>" (nested: "\n\r<bar>\x1b[A") and nothing after it until the next
    # update: the bar must be reported from the chunk that drew it, as OneTrainer's epoch/step pair.
    buf = io.StringIO()
    outer = tqdm(total=1, desc="epoch", file=buf, mininterval=0) if nested else None
    bar = tqdm(total=3, desc="step", file=buf, mininterval=0)
    stream = BarStream()
    done = 0
    for i in range(3):
        bar.update(1)
        new = buf.getvalue()[done:]
        done += len(new)
        got = [b for b in bars(stream.feed(new, t=float(i))) if b.desc == "step"]
        assert got and got[-1].n == i + 1 and got[-1].t == float(i)
    bar.close()
    if outer is not None:
        outer.close()
    events = stream.feed(buf.getvalue()[done:], t=9.0) + stream.close(t=9.0)
    assert all(b.n == 3 for b in bars(events) if b.desc == "step")  # never a repeat of an earlier state
