"""Reading tqdm progress bars out of a program's raw output (OneTrainer's training log).

tqdm redraws a bar in place with `\\r` (and moves between stacked bars with ANSI cursor codes), so
the text a terminal shows is not the text in the pipe. `BarStream` takes raw chunks as they arrive,
splits them on `\\r`/`\\n`, strips ANSI escapes (colour, cursor moves) and turns every bar state into
a `BarUpdate`; anything else comes back as a plain text line (OneTrainer's `Saving ...`, errors).

The format is tqdm's default `l_bar{bar}r_bar`:
`epoch:   2%|▍    | 3/200 [13:46<11:15:41, 205.79s/it, loss=0.1, smooth loss=0.12]`, the rate as
`it/s` or, below one per second, `s/it`; without a total: `step: 7it [00:03, 2.10it/s]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>78]")

_NUM = r"[0-9]+(?:\.[0-9]+)?[kMGTPEZY]?"
_CLOCK = r"(?:[0-9]+d, )?[0-9]+(?::[0-9]{2}){1,2}|\?"
_BAR = re.compile(
    r"(?:(?P<desc>[^|\[\]]*?):\s*)?"
    r"(?:(?P<pct>[0-9]{1,3})%\|[^|]*\|\s*)?"
    rf"(?P<n>{_NUM})(?:/(?P<total>{_NUM}))?(?P<unit>[A-Za-z]*)\s*"
    rf"\[(?P<elapsed>{_CLOCK})(?:<(?P<remaining>{_CLOCK}))?,\s*"
    rf"(?P<rate>\?|{_NUM})\s*(?P<rate_unit>[A-Za-z]*/s|s/[A-Za-z]+)"
    r"(?P<postfix>[^\]]*)\]"
)
_SCALE = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Z": 1e21, "Y": 1e24}


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def parse_number(text: str) -> float:
    """`205.79`, `1.2k` (tqdm's unit_scale) -> float."""
    suffix = text[-1] if text and text[-1] in _SCALE and not text[-1].isdigit() else ""
    return float(text[: len(text) - len(suffix)]) * _SCALE[suffix]


def parse_clock(text: str | None) -> float | None:
    """tqdm's `[D d, ][H:]MM:SS` -> seconds; `?` -> None."""
    if text is None or text == "?":
        return None
    days = 0
    if "d, " in text:
        d, text = text.split("d, ", 1)
        days = int(d)
    seconds = 0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return float(days * 86400 + seconds)


def _parse_postfix(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class BarUpdate:
    """One drawn state of one bar. `rate_its` is tqdm's smoothed rate, always as iterations/s."""

    desc: str
    n: float
    total: float | None
    elapsed_s: float | None
    remaining_s: float | None
    rate_its: float | None
    postfix: dict[str, str] = field(default_factory=dict)
    t: float = 0.0  # when it arrived (the caller's clock), for measuring rates between updates
    raw: str = ""

    @property
    def s_per_it(self) -> float | None:
        return None if not self.rate_its else 1.0 / self.rate_its


def parse_bar(segment: str, t: float = 0.0) -> BarUpdate | None:
    """The bar drawn in one `\\r`-separated segment, or None when it holds no bar."""
    text = strip_ansi(segment)
    m = _BAR.search(text)
    if m is None:
        return None
    rate: float | None = None
    if m["rate"] != "?":
        value = parse_number(m["rate"])
        rate = (1.0 / value if value > 0 else None) if m["rate_unit"].startswith("s/") else value
    return BarUpdate(
        desc=(m["desc"] or "").strip(),
        n=parse_number(m["n"]),
        total=parse_number(m["total"]) if m["total"] else None,
        elapsed_s=parse_clock(m["elapsed"]),
        remaining_s=parse_clock(m["remaining"]),
        rate_its=rate,
        postfix=_parse_postfix(m["postfix"]),
        t=t,
        raw=text.strip(),
    )


Event = BarUpdate | str


class BarStream:
    """Feed raw output chunks; get bar updates and text lines in order.

    A chunk may end in the middle of a bar or a line: the unfinished tail waits for the next chunk
    (or `close()`). Bytes are decoded by the caller (errors="replace").
    """

    def __init__(self) -> None:
        self._pending = ""
        self._early: str | None = None  # pending text already reported as a bar

    def feed(self, chunk: str, t: float = 0.0) -> list[Event]:
        self._pending += chunk
        parts = re.split(r"[\r\n]", self._pending)
        self._pending = parts.pop()
        if parts and self._early is not None:
            if parts[0] == self._early:
                parts = parts[1:]
            self._early = None
        events = list(self._events(parts, t))
        # tqdm puts `\r` BEFORE a redraw, not after: the newest bar state sits in the unfinished
        # tail until the next redraw. A complete bar there (it ends in `]`) is reported now, or every
        # update would arrive one step late.
        if strip_ansi(self._pending).rstrip().endswith("]"):
            bar = parse_bar(self._pending, t)
            if bar is not None:
                events.append(bar)
                self._early = self._pending
        return events

    def close(self, t: float = 0.0) -> list[Event]:
        rest, self._pending = self._pending, ""
        early, self._early = self._early, None
        if not rest or rest == early:
            return []
        return list(self._events([rest], t))

    @staticmethod
    def _events(parts: list[str], t: float) -> Iterator[Event]:
        for part in parts:
            if not part.strip():
                continue
            bar = parse_bar(part, t)
            if bar is not None:
                yield bar
            else:
                line = strip_ansi(part).rstrip()
                if line.strip():
                    yield line


def parse_text(text: str) -> list[Event]:
    """Every event in a finished log (a file or a pasted terminal line)."""
    stream = BarStream()
    return stream.feed(text) + stream.close()
