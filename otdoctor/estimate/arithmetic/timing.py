"""How long a run takes: model load + latent caching + steps / it/s + sampling + saves and backups,
counting actions the way OneTrainer's TimedActionMixin fires them."""

from __future__ import annotations

from dataclasses import dataclass

from otdoctor.data import load_table
from otdoctor.estimate.arithmetic.steps import StepPlan

_ROUGH = load_table("gpu_speed.toml")
_UNIT_SECONDS = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0}


# Counting timed actions ------------------------------------------------------------------------
def action_count(
    interval: float,
    unit: str,
    *,
    epochs: int,
    steps_per_epoch: int,
    loop_s: float,
    start_at_zero: bool,
    skip_first: int = 0,
) -> int:
    """How often OneTrainer fires a repeating action (sample, backup, save) during the whole loop.

    EPOCH/STEP as TimedActionMixin counts them; SECOND/MINUTE/HOUR from the loop's wall time
    (`loop_s`), firing at start when `start_at_zero`. `skip_first` units are skipped.
    """
    unit = unit.upper()
    total_steps = epochs * steps_per_epoch
    if unit == "NEVER" or interval is None:
        return 0
    if unit == "ALWAYS":
        return total_steps
    if unit == "EPOCH":
        return _epoch_actions(int(interval), epochs, start_at_zero, skip_first)
    if unit == "STEP":
        return _step_actions(int(interval), total_steps, start_at_zero, skip_first)
    fired = _clock_actions(interval, _UNIT_SECONDS.get(unit), loop_s, start_at_zero, skip_first)
    # The clock is looked at once per step: a period shorter than a step still fires once a step.
    return min(fired, total_steps + (1 if start_at_zero else 0))


def _epoch_actions(k: int, epochs: int, start_at_zero: bool, skip_first: int) -> int:
    """Epochs e in [max(first, skip_first), epochs) with e % k == 0, counted, not enumerated."""
    if k <= 0:
        return 0
    low, high = max(0 if start_at_zero else 1, skip_first), epochs - 1
    return max(0, high // k - (low - 1) // k) if low <= high else 0


def _step_actions(k: int, total_steps: int, start_at_zero: bool, skip_first: int) -> int:
    if k <= 0:
        return 0
    if start_at_zero:
        fired = (total_steps + k - 1) // k  # steps 0, k, 2k ... < total
        skipped = (skip_first + k - 1) // k if skip_first else 0
    else:
        fired = total_steps // k  # steps k-1, 2k-1, ...
        skipped = skip_first // k
    return max(0, fired - skipped)


def _clock_actions(interval: float, seconds: float | None, loop_s: float, start_at_zero: bool, skip_first: int) -> int:
    if seconds is None or interval <= 0:
        return 0
    period = interval * seconds
    ratio = loop_s / period
    if not ratio < 2**62:  # a period of 1e-300 s: more firings than any loop has steps (capped above)
        return 2**62
    fired = int(ratio) + (1 if start_at_zero else 0)
    skipped = int(skip_first) + (1 if start_at_zero and skip_first else 0) if skip_first else 0
    return max(0, fired - skipped)


# Time ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    """A speed with its spread and where it came from (always said to the user)."""

    its: float
    low: float | None = None
    high: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Schedule:
    interval: float = 0
    unit: str = "NEVER"
    skip_first: int = 0


@dataclass(frozen=True)
class TimeInputs:
    plan: StepPlan
    rate: Rate | None
    model_load_s: float = 0.0
    model_load_source: str = ""
    cache_items: int = 0
    caching_items_per_s: float | None = None
    caching_source: str = ""
    sampling: Schedule = Schedule()
    images_per_sample: int = 1
    sample_s: float | None = None  # seconds per sample image; None -> from the rate
    sample_source: str = ""
    saves: Schedule = Schedule()
    save_bytes: int = 0
    backups: Schedule = Schedule()
    backup_bytes: int = 0
    backup_before_save: bool = False
    final_save: bool = True
    write_bytes_per_s: float = float(_ROUGH["disk_write_bytes_per_s"])
    write_source: str = ""
    sampling_speedup: float = float(_ROUGH["sampling_speedup"])
    sample_steps: int = int(_ROUGH["sample_steps"])
    sample_overhead_s: float = float(_ROUGH["sample_overhead_s"])
    # What a smoke run measured (seconds beyond a steady step), in place of the rough rules above:
    # one save (the final one with the exit included), one backup, one epoch boundary.
    save_s: float | None = None
    save_source: str = ""
    backup_s: float | None = None
    backup_source: str = ""
    epoch_s: float | None = None
    epoch_source: str = ""
    final_s: float | None = None  # the final save with the process's exit, apart from the saves before it
    final_source: str = ""


@dataclass(frozen=True)
class Term:
    name: str
    count: float | None
    each_s: float | None
    seconds: float | None
    low_s: float | None
    high_s: float | None
    source: str


@dataclass(frozen=True)
class TimeEstimate:
    terms: tuple[Term, ...]
    total_s: float | None
    low_s: float | None
    high_s: float | None
    steps_s: float | None


def _sample_seconds(inp: TimeInputs, its: float) -> float:
    if inp.sample_s is not None:
        return inp.sample_s
    return inp.sample_steps / (its * inp.sampling_speedup) + inp.sample_overhead_s


def _setup_terms(inp: TimeInputs) -> list[Term]:
    """What happens before the first step: loading the model and caching the latents."""
    load = Term(
        "model load", 1, inp.model_load_s, inp.model_load_s, inp.model_load_s, inp.model_load_s, inp.model_load_source
    )
    if inp.cache_items and inp.caching_items_per_s:
        cache_s = inp.cache_items / inp.caching_items_per_s
        caching = Term(
            "latent caching",
            inp.cache_items,
            1 / inp.caching_items_per_s,
            cache_s,
            cache_s,
            cache_s,
            inp.caching_source,
        )
    else:
        caching = Term(
            "latent caching",
            inp.cache_items,
            None,
            0.0 if not inp.cache_items else None,
            None,
            None,
            inp.caching_source,
        )
    return [load, caching]


def _actions(inp: TimeInputs, loop_s: float) -> tuple[int, int, int]:
    """(samplings, saves, backups) during a loop of `loop_s` seconds."""
    plan = inp.plan

    def count(s: Schedule, start_at_zero: bool, skip_first: int) -> int:
        return action_count(
            s.interval,
            s.unit,
            epochs=plan.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            loop_s=loop_s,
            start_at_zero=start_at_zero,
            skip_first=skip_first,
        )

    return (
        count(inp.sampling, True, inp.sampling.skip_first),
        count(inp.saves, False, inp.saves.skip_first),
        count(inp.backups, False, 0),
    )


def _write_seconds(measured: float | None, size: int, bytes_per_s: float) -> float:
    """One save or backup: as measured, else its size at the disk's speed."""
    if measured is not None:
        return measured
    return size / bytes_per_s if bytes_per_s else 0.0


def _loop_terms(inp: TimeInputs, rate: Rate, its: float) -> tuple[float, list[Term]]:
    """The training loop at `its` steps per second: its seconds and its terms."""
    plan = inp.plan
    steps_s = plan.total_steps / its
    sample_each = _sample_seconds(inp, its)
    save_each = _write_seconds(inp.save_s, inp.save_bytes, inp.write_bytes_per_s)
    backup_each = _write_seconds(inp.backup_s, inp.backup_bytes, inp.write_bytes_per_s)
    boundaries = max(0, plan.epochs - 1)
    epochs_s = boundaries * (inp.epoch_s or 0.0)
    loop_s = steps_s
    for _ in range(8):  # time-based schedules depend on the loop's length, which they lengthen
        n_sample, n_save, n_backup = _actions(inp, loop_s)
        new_loop = (
            steps_s
            + epochs_s
            + n_sample * inp.images_per_sample * sample_each
            + n_save * save_each
            + n_backup * backup_each
        )
        if abs(new_loop - loop_s) < 1e-6:
            break
        loop_s = new_loop
    n_final = 1 if inp.final_save and inp.final_s is None else 0
    n_final_backup = 1 if inp.final_save and inp.backup_before_save else 0
    n_images = n_sample * inp.images_per_sample
    write_src = inp.write_source
    n_saves, n_backups = n_save + n_final, n_backup + n_final_backup
    rows = [
        Term("training steps", plan.total_steps, 1 / its, steps_s, None, None, rate.source),
        Term("sampling", n_images, sample_each, n_images * sample_each, None, None, inp.sample_source),
        Term("saves", n_saves, save_each, n_saves * save_each, None, None, inp.save_source or write_src),
        Term("backups", n_backups, backup_each, n_backups * backup_each, None, None, inp.backup_source or write_src),
    ]
    if inp.final_save and inp.final_s is not None:
        rows.append(Term("final save and exit", 1, inp.final_s, inp.final_s, None, None, inp.final_source))
    if inp.epoch_s is not None:
        rows.append(Term("epoch boundaries", boundaries, inp.epoch_s, epochs_s, None, None, inp.epoch_source))
    return sum(r.seconds or 0.0 for r in rows), rows


def estimate_time(inp: TimeInputs) -> TimeEstimate:
    plan, rate = inp.plan, inp.rate
    terms = _setup_terms(inp)
    if rate is None or rate.its <= 0:
        terms.append(Term("training steps", plan.total_steps, None, None, None, None, "no it/s known"))
        return TimeEstimate(tuple(terms), None, None, None, None)
    mid_s, rows = _loop_terms(inp, rate, rate.its)
    # The slow end of the range uses the low it/s, the fast end the high one.
    low_total, low_rows = _loop_terms(inp, rate, rate.high) if rate.high else (mid_s, rows)
    high_total, high_rows = _loop_terms(inp, rate, rate.low) if rate.low else (mid_s, rows)
    for r, lo, hi in zip(rows, low_rows, high_rows, strict=True):
        terms.append(Term(r.name, r.count, r.each_s, r.seconds, lo.seconds, hi.seconds, r.source))
    fixed = sum(t.seconds or 0.0 for t in terms[:2])
    return TimeEstimate(tuple(terms), fixed + mid_s, fixed + low_total, fixed + high_total, plan.total_steps / rate.its)
