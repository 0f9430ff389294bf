"""OneTrainer's overheads, read from when its output arrived: sampling, backups, saves, epoch boundaries.

OneTrainer prints no timings. What it prints, in order (seen at 23df383): notices, `Clearing cache
directory`, `Selected layers: N`, an `epoch` bar, `caching` bars, then per epoch a `step` bar whose
count rises with each step, a `sampling` bar when a sample is due, `Creating Backup <path>` and
`Writing model shards` bars for a backup, and `Saving <path>` for a save (the final one after the
last epoch). The sampling bar covers only the diffusion steps: moving the models and building the
pipeline cost more than the bar itself, and the first step afterwards is slow too.

So each overhead is measured as a gap: the time between two consecutive step increments, less a
steady step. A gap in which nothing happened is a steady step; one that crosses an epoch boundary
holds the epoch's overhead; one that also holds a sampling bar, a backup or a save holds that too.
The final gap (last step to the end of the process) is the final save with the exit.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from otdoctor.estimate.progress_bars import BarUpdate

Event = tuple[float, "BarUpdate | str"]
_BACKUP = re.compile(r"Creating Backup\b")
_SAVE = re.compile(r"^\s*Saving\s+\S")


@dataclass
class Gap:
    start: float
    end: float
    tags: set[str] = field(default_factory=set)

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Overheads:
    """Seconds beyond a steady step: per sampling pass, backup, intermediate save, epoch boundary."""

    step_s: float | None = None
    sample_s: float | None = None
    backup_s: float | None = None
    save_s: float | None = None
    epoch_s: float | None = None
    final_s: float | None = None  # the last step to the process's end: the final save, then exit
    samples: int = 0
    backups: int = 0
    saves: int = 0
    steady_steps: int = 0


def _tag(ev: BarUpdate | str) -> str | None:
    if isinstance(ev, str):
        if _BACKUP.search(ev):
            return "backup"
        return "save" if _SAVE.match(ev) else None
    return "sample" if ev.desc == "sampling" else None


def gaps(events: Iterable[Event], warmup: int = 1) -> tuple[list[Gap], Gap | None]:
    """The gaps between step increments, the first WARMUP left out (at least the first, which holds
    the load and the first step's setup), and the tail."""
    out: list[Gap] = []
    current: Gap | None = None
    last_n: float | None = None
    for t, ev in events:
        if isinstance(ev, BarUpdate) and ev.desc == "step":
            if last_n is not None and ev.n < last_n and current is not None:
                current.tags.add("epoch")  # a new epoch's bar
            if last_n is not None and ev.n > last_n:
                if current is not None:
                    current.end = t
                    out.append(current)
                current = Gap(t, t)
            last_n = ev.n
            continue
        tag = _tag(ev)
        if tag and current is not None:
            current.tags.add(tag)
    return out[max(1, warmup) :], current


ACTIONS = ("sample", "backup", "save")


def _shares(spans: list[Gap], step: float, epoch: float) -> dict[str, float]:
    """Each action's cost, where one gap may hold several (a sampling pass, a backup and a save at
    the same epoch boundary): each gap's time beyond a step and an epoch is split among its actions
    by what the others cost (a few rounds of Gauss-Seidel over the gaps' sums)."""
    cost = dict.fromkeys(ACTIONS, 0.0)
    for _ in range(25):
        for tag in ACTIONS:
            rest = [
                g.seconds
                - step
                - (epoch if "epoch" in g.tags else 0.0)
                - sum(cost[o] for o in g.tags & set(ACTIONS) - {tag})
                for g in spans
                if tag in g.tags
            ]
            cost[tag] = max(0.0, statistics.fmean(rest)) if rest else 0.0
    return cost


def overheads(events: Iterable[Event], end: float | None, warmup: int = 1) -> Overheads:
    """What each overhead cost in this run; END is when the process ended (None: still running)."""
    spans, tail = gaps(events, warmup)
    plain = [g.seconds for g in spans if not g.tags]
    if not plain:
        return Overheads()
    step = statistics.fmean(plain)  # means, not medians: the figures add up to a run's wall time
    lone = [g.seconds for g in spans if g.tags == {"epoch"}]
    epoch = max(0.0, statistics.fmean(lone) - step) if lone else None
    cost = _shares(spans, step, epoch or 0.0)
    count = {tag: sum(tag in g.tags for g in spans) for tag in ACTIONS}
    seen = {tag: cost[tag] if count[tag] else None for tag in ACTIONS}
    final = None if tail is None or end is None else max(0.0, end - tail.start)
    return Overheads(
        step,
        seen["sample"],
        seen["backup"],
        seen["save"],
        epoch,
        final,
        count["sample"],
        count["backup"],
        count["save"],
        len(plain),
    )


class RssPoller:
    """The peak resident memory of a process tree, polled every `interval_s` until `stop()`."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        import threading

        self.pid = pid
        self.interval_s = interval_s
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from otdoctor.probe.processes import tree_rss_bytes

        while not self._stop.wait(self.interval_s):
            rss = tree_rss_bytes(self.pid)
            if rss is not None:
                self.peak = max(self.peak or 0, rss)

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.peak
