"""Measuring a training run from its progress bars: model load, caching rate, steady-state it/s.

Rates come from when bar updates ARRIVE (our monotonic clock), not from tqdm's printed rate, which
is an exponential average that lags and rounds. The first `warmup` steps are left out: they hold
CUDA kernel selection, allocator growth and the first optimizer state allocation.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from otdoctor.estimate.progress_bars import BarUpdate
from otdoctor.probe.nvml import MemorySampler
from otdoctor.probe.processes import process_tree


def _percentile(values: list[float], q: float) -> float:
    srt = sorted(values)
    return srt[min(len(srt) - 1, max(0, int(round(q * (len(srt) - 1)))))]


def rate_spread(step_s: list[float], blocks: int = 5) -> tuple[float, float] | None:
    """(low, high) it/s: the slowest and fastest of `blocks` consecutive stretches of steps.

    A whole run averages over thousands of steps, so single-step jitter (p10/p90 of one step)
    overstates its uncertainty; what moves a long run is the speed drifting (thermal limits, other
    work on the machine), which stretches of steps show. Under 10 steps: p90/p10 of single steps.
    """
    times = [t for t in step_s if t > 0]
    if not times:
        return None
    if len(times) < 2 * blocks:
        return 1 / _percentile(times, 0.9), 1 / _percentile(times, 0.1)
    size = len(times) // blocks
    rates = [size / sum(times[i * size : (i + 1) * size]) for i in range(blocks)]
    return min(rates), max(rates)


@dataclass
class BarTrace:
    desc: str
    total: float | None
    points: list[tuple[float, float]] = field(default_factory=list)  # (arrival time, n)


@dataclass(frozen=True)
class StepRate:
    its: float
    its_low: float
    its_high: float
    steps: int


def steady_rate(points: list[tuple[float, float]], warmup: int) -> StepRate | None:
    """it/s over the steps after `warmup`, with p10/p90 of the per-update rates as the spread."""
    start = next((i for i, (_, n) in enumerate(points) if n >= warmup), None)
    if start is None:
        return None
    pts = points[start:]
    # Collapse redraws of the same n (postfix refreshes) to the first arrival.
    dedup: list[tuple[float, float]] = []
    for t, n in pts:
        if not dedup or n > dedup[-1][1]:
            dedup.append((t, n))
    if len(dedup) < 2:
        return None
    (t0, n0), (t1, n1) = dedup[0], dedup[-1]
    if t1 <= t0 or n1 <= n0:
        return None
    per_step: list[float] = []
    for (ta, na), (tb, nb) in zip(dedup, dedup[1:], strict=False):
        if nb > na and tb > ta:
            per_step += [(tb - ta) / (nb - na)] * int(nb - na)
    its = (n1 - n0) / (t1 - t0)
    spread = rate_spread(per_step)
    if spread is None:
        return StepRate(its, its, its, int(n1 - n0))
    return StepRate(its, min(spread[0], its), max(spread[1], its), int(n1 - n0))


class Meter:
    """Collects bar updates of one run (started at `t0`) and says what they measure."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.first_bar_t: float | None = None
        self.traces: list[BarTrace] = []
        self._current: dict[str, BarTrace] = {}

    def add(self, bar: BarUpdate) -> BarTrace:
        if self.first_bar_t is None and bar.desc in ("epoch", "step", "caching"):
            self.first_bar_t = bar.t
        trace = self._current.get(bar.desc)
        # A new bar instance: the count went back, or the total changed (OneTrainer's next epoch).
        if trace is None or (trace.points and bar.n < trace.points[-1][1]) or bar.total != trace.total:
            trace = BarTrace(bar.desc, bar.total)
            self.traces.append(trace)
            self._current[bar.desc] = trace
        trace.points.append((bar.t, bar.n))
        return trace

    def current(self, desc: str) -> BarTrace | None:
        return self._current.get(desc)

    @property
    def load_s(self) -> float | None:
        """Start of the process to its first training bar: imports and loading the model."""
        return None if self.first_bar_t is None else self.first_bar_t - self.t0

    def caching_images_per_s(self) -> float | None:
        """The slowest caching bar (the VAE latents; text caching is quick)."""
        best: tuple[float, float] | None = None
        for tr in self.traces:
            if tr.desc != "caching" or len(tr.points) < 2:
                continue
            n = max(n for _, n in tr.points)
            span = tr.points[-1][0] - tr.points[0][0]
            if n > 0 and span > 0 and (best is None or span > best[1]):
                best = (n / span, span)
        return best[0] if best else None

    def step_rate(self, warmup: int) -> StepRate | None:
        steps = [tr for tr in self.traces if tr.desc == "step" and tr.points]
        if not steps:
            return None
        return steady_rate(steps[0].points, warmup)


class VramPoller:
    """Polls NVML every `interval_s` for the peak GPU memory of a process tree (or of the GPU).

    Reads through `otdoctor.probe.nvml.MemorySampler` (which also replays recorded snapshots); with
    no NVML the peak stays unavailable and says why.
    """

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_process_bytes: int | None = None
        self.peak_device_bytes: int | None = None
        self.baseline_device_bytes: int | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._sampler: MemorySampler | None = None
        try:
            self._sampler = MemorySampler(os.environ)
            self.baseline_device_bytes = self._sampler.device_used_bytes()
        except Exception as exc:  # no driver, no GPU, no pynvml: a fact, not an error
            self.error = f"NVML unavailable ({type(exc).__name__}: {exc})".strip()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        if self._sampler is not None:
            self._thread.start()

    def _poll(self, sampler: MemorySampler) -> None:
        used = sampler.device_used_bytes()
        self.peak_device_bytes = max(self.peak_device_bytes or 0, used)
        total = sampler.processes_used_bytes(process_tree(self.pid))
        if total is not None:
            self.peak_process_bytes = max(self.peak_process_bytes or 0, total)

    def _loop(self) -> None:
        assert self._sampler is not None
        while not self._stop.wait(self.interval_s):
            try:
                self._poll(self._sampler)
            except Exception as exc:
                self.error = f"NVML polling failed: {exc}"
                return

    def stop(self) -> tuple[int | None, str]:
        """(peak bytes, where the number comes from)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        if self._sampler is not None:
            self._sampler.close()
        if self.peak_process_bytes:
            return self.peak_process_bytes, "NVML, the training process"
        if self.peak_device_bytes is not None and self.baseline_device_bytes is not None:
            return max(
                0, self.peak_device_bytes - self.baseline_device_bytes
            ), "NVML, GPU memory used minus before the run"
        return None, self.error or "unavailable"
