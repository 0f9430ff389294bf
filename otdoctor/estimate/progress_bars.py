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

# Every quantifier on user text is bounded or anchored to a literal, so a line costs time linear in
# its length (a 10 MB line of digits took minutes with the open `[0-9]+`/lazy description).
_NUM = r"[0-9]{1,20}(?:\.[0-9]{1,20})?[kMGTPEZY]?"
_CLOCK = r"(?:[0-9]{1,6}d, )?[0-9]{1,12}(?::[0-9]{2}){1,2}|\?"
# The counter and the bracket tqdm draws after it: `3/200 [elapsed<remaining, rate unit`; then the
# postfix up to `]`. The description and the percentage before it are read with string methods.
_CORE = re.compile(
    # the first digit, then a look back: not the tail of a longer number (and scanning skips to digits)
    rf"(?P<n>[0-9](?<![0-9.][0-9])[0-9]{{0,19}}(?:\.[0-9]{{1,20}})?[kMGTPEZY]?)"
    rf"(?:/(?P<total>{_NUM}))?[A-Za-z]{{0,16}}\s{{0,8}}"
    rf"\[(?P<elapsed>{_CLOCK})(?:<(?P<remaining>{_CLOCK}))?,\s{{0,8}}"
    rf"(?P<rate>\?|{_NUM})\s{{0,8}}(?P<rate_unit>[A-Za-z]{{0,16}}/s|s/[A-Za-z]{{1,16}})"
)
_PERCENT = re.compile(r"[0-9]{1,3}%\Z")
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


def _label(before: str) -> tuple[str, int]:
    """(description, where it starts) of the text before a counter: `desc:   2%|bar| `."""
    text = before.rstrip()
    begin = len(before)
    if text.endswith("|"):
        j = text.rfind("|", 0, len(text) - 1)
        pct = _PERCENT.search(text, max(0, j - 4), j) if j > 0 else None
        if pct is not None:
            begin = pct.start()
            text = text[:begin].rstrip()
    if not text.endswith(":"):
        return "", begin
    start = max(text.rfind(c, 0, len(text) - 1) for c in "|[]") + 1
    return text[start:-1].strip(), start


def parse_bar(segment: str, t: float = 0.0) -> BarUpdate | None:
    """The bar drawn in one `\\r`-separated segment, or None when it holds no bar."""
    text = strip_ansi(segment)
    if "/s" not in text and "s/" not in text:
        return None  # no rate unit (`it/s`, `s/it`): no bar, and no pattern needs to look
    close = -1
    for core in _CORE.finditer(text):
        if close < core.end():  # each `]` is looked for once: the matches come in order
            close = text.find("]", core.end())
            if close < 0:
                return None  # no later bracket closes either
        desc, start = _label(text[: core.start()])
        return _update(core, desc, text[core.end() : close], text[start : close + 1].strip(), t)
    return None


def _update(core: re.Match[str], desc: str, postfix: str, raw: str, t: float) -> BarUpdate:
    rate: float | None = None
    if core["rate"] != "?":
        value = parse_number(core["rate"])
        rate = (1.0 / value if value > 0 else None) if core["rate_unit"].startswith("s/") else value
    return BarUpdate(
        desc=desc,
        n=parse_number(core["n"]),
        total=parse_number(core["total"]) if core["total"] else None,
        elapsed_s=parse_clock(core["elapsed"]),
        remaining_s=parse_clock(core["remaining"]),
        rate_its=rate,
        postfix=_parse_postfix(postfix),
        t=t,
        raw=raw,
    )


Event = BarUpdate | str


class BarStream:
    """Feed raw output chunks; get bar updates and text lines in order.

    A chunk may end in the middle of a bar or a line: the unfinished tail waits for the next chunk
    (or `close()`). Bytes are decoded by the caller (errors="replace"). Work is linear in the
    output: only new text is split, and a long unfinished line is joined only when it ends.
    """

    _LIVE_BAR_CHARS = 4096  # a drawn bar is one terminal line; longer unfinished text is no live bar

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._pending_chars = 0
        self._early: str | None = None  # pending text already reported as a bar

    def feed(self, chunk: str, t: float = 0.0) -> list[Event]:
        parts = _SEPARATORS.split(chunk)
        tail = parts.pop()
        if parts:
            parts[0] = "".join(self._pending) + parts[0]
            self._pending, self._pending_chars = [], 0
        if tail:
            self._pending.append(tail)
            self._pending_chars += len(tail)
        if parts and self._early is not None:
            if parts[0] == self._early:
                parts = parts[1:]
            self._early = None
        events = list(self._events(parts, t))
        # tqdm puts `\r` BEFORE a redraw, not after: the newest bar state sits in the unfinished
        # tail until the next redraw. A complete bar there (it ends in `]`) is reported now, or every
        # update would arrive one step late.
        if tail and self._pending_chars <= self._LIVE_BAR_CHARS:
            pending = "".join(self._pending)
            bar = parse_bar(pending, t) if strip_ansi(pending).rstrip().endswith("]") else None
            if bar is not None:
                events.append(bar)
                self._early = pending
        return events

    def close(self, t: float = 0.0) -> list[Event]:
        rest = "".join(self._pending)
        self._pending, self._pending_chars = [], 0
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


_SEPARATORS = re.compile(r"[\r\n]+")  # empty segments carry nothing


def parse_text(text: str) -> list[Event]:
    """Every event in a finished log (a file or a pasted terminal line)."""
    stream = BarStream()
    return stream.feed(text) + stream.close()
