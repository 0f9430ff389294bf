"""How many steps a OneTrainer run has and how long it will take. Pure arithmetic, no I/O.

Step arithmetic follows OneTrainer (mgds RamCache/DiskCache, AspectBucketing, AspectBatchSorting):
- samples per epoch of a concept: REPEATS -> `floor(n_images * balancing)` in float arithmetic
  (so `floor(77 * (10/77))` is 9), SAMPLES -> `int(balancing)`; disabled and VALIDATION concepts
  add nothing;
- epoch `e` of a concept takes the samples at positions `e*S .. e*S+S-1` of its (sorted) image list,
  wrapping around, so which images an epoch sees, and so their buckets, can change per epoch;
- every sample lands in an aspect bucket (its crop resolution); each bucket drops its incomplete
  batch: steps = sum over buckets of floor(n_bucket / batch_size).

The time model adds: model load + latent caching + steps / it/s + sampling + saves and backups,
counting actions the way OneTrainer's TimedActionMixin fires them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

# Pixel multiple OneTrainer rounds bucket sides to (modules/dataLoader/*BaseDataLoader.py).
BUCKET_QUANTIZATION = {"sdxl": 64, "sd15": 8}
# Aspect ratios AspectBucketing offers (h:w), plus their inverses.
_BUCKET_ASPECTS = (
    (1.0, 1.0),
    (1.0, 1.25),
    (1.0, 1.5),
    (1.0, 1.75),
    (1.0, 2.0),
    (1.0, 2.5),
    (1.0, 3.0),
    (1.0, 3.5),
    (1.0, 4.0),
)


# Steps ------------------------------------------------------------------------------------------
def samples_per_epoch(n_images: int, balancing: float, strategy: str = "REPEATS") -> int:
    """OneTrainer's per-concept sample count, float arithmetic included."""
    if strategy.upper() == "SAMPLES":
        return int(balancing)
    return int(math.floor(n_images * float(balancing)))


@dataclass(frozen=True)
class ConceptPlan:
    name: str
    n_images: int
    balancing: float = 1.0
    strategy: str = "REPEATS"
    enabled: bool = True
    type: str = "STANDARD"
    image_variations: int = 1
    # (width, height) of each image in OneTrainer's order (sorted paths); None when not known.
    image_sizes: tuple[tuple[int, int], ...] | None = None

    @property
    def counts(self) -> bool:
        return self.enabled and self.type.upper() != "VALIDATION"

    @property
    def samples(self) -> int:
        return samples_per_epoch(self.n_images, self.balancing, self.strategy) if self.counts else 0

    def why_left_out(self) -> str | None:
        if not self.enabled:
            return "disabled"
        if self.type.upper() == "VALIDATION":
            return "validation concept"
        return None


def bucket_resolutions(target_px: int, quantization: int) -> list[tuple[int, int]]:
    """The (height, width) buckets AspectBucketing builds for one target resolution."""
    out: set[tuple[int, int]] = set()
    for h, w in _BUCKET_ASPECTS:
        for a, b in ((h, w), (w, h)):
            scale = target_px / math.sqrt(a * b)
            out.add((round(a * scale / quantization) * quantization, round(b * scale / quantization) * quantization))
    return sorted(out)


def bucket_for(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect (h/w) is nearest the image's."""
    aspect = height / width
    return min(buckets, key=lambda hw: abs(hw[0] / hw[1] - aspect))


def parse_resolution(text: str) -> tuple[list[int], tuple[int, int] | None]:
    """OneTrainer's resolution setting: "1024", "768,1024" (targets) or "832x1216" (fixed WxH)."""
    text = str(text).strip()
    if "x" in text and "," not in text:
        w, h = text.split("x", 1)
        return [], (int(h), int(w))
    return [int(p.strip()) for p in text.split(",") if p.strip()], None


@dataclass(frozen=True)
class StepPlan:
    steps_per_epoch: int  # of the first epoch
    total_steps: int
    epochs: int
    batch_size: int
    samples_per_epoch: int
    per_concept: tuple[tuple[str, int, str | None], ...]  # (name, samples, why left out)
    buckets: tuple[tuple[tuple[int, int], int], ...] = ()  # ((h, w), samples) in the first epoch
    dropped_per_epoch: int = 0  # samples lost to incomplete batches in the first epoch
    varies_per_epoch: bool = False
    exact: bool = True  # False when image sizes were unknown or targets are random
    notes: tuple[str, ...] = field(default_factory=tuple)


def _window_counts(labels: Sequence[int], start: int, count: int, n_labels: int) -> list[int]:
    """How many of positions start..start+count-1 (wrapping over `labels`) carry each label."""
    n = len(labels)
    out = [0] * n_labels
    if n == 0 or count <= 0:
        return out
    full, rest = divmod(count, n)
    if full:
        for lab in labels:
            out[lab] += full
    s = start % n
    for i in range(rest):
        out[labels[(s + i) % n]] += 1
    return out


def plan_steps(
    concepts: Sequence[ConceptPlan],
    epochs: int,
    batch_size: int = 1,
    resolution: str = "1024",
    aspect_ratio_bucketing: bool = True,
    quantization: int = 64,
) -> StepPlan:
    """Steps per epoch and in total, with bucket drops when every counted concept's sizes are known."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    if epochs < 0:
        raise ValueError("epochs must not be negative")
    counted = [c for c in concepts if c.counts and c.samples > 0 and c.n_images > 0]
    per_concept = tuple((c.name, c.samples, c.why_left_out()) for c in concepts)
    total_samples = sum(c.samples for c in counted)
    notes: list[str] = []
    targets, fixed = parse_resolution(resolution)
    sizes_known = all(c.image_sizes is not None and len(c.image_sizes) == c.n_images for c in counted)

    if fixed is not None or not aspect_ratio_bucketing or not sizes_known or len(targets) > 1:
        # One bucket (every image cropped to the same size), or sizes unknown: drop one remainder.
        spe = total_samples // batch_size
        exact = True
        if aspect_ratio_bucketing and fixed is None and not sizes_known and counted:
            exact = False
            notes.append(
                "image sizes unknown: assumed one aspect bucket (all images the same size); "
                "pass --config to count bucket drops"
            )
        if aspect_ratio_bucketing and len(targets) > 1:
            exact = False
            notes.append(f"several target resolutions ({resolution}): OneTrainer picks one at random per image")
        return StepPlan(
            spe,
            spe * epochs,
            epochs,
            batch_size,
            total_samples,
            per_concept,
            buckets=((fixed or (targets[0], targets[0]) if targets else (0, 0), total_samples),) if counted else (),
            dropped_per_epoch=total_samples - spe * batch_size,
            exact=exact,
            notes=tuple(notes),
        )

    buckets = bucket_resolutions(targets[0], quantization)
    index = {b: i for i, b in enumerate(buckets)}
    labelled = [[index[bucket_for(w, h, buckets)] for (w, h) in (c.image_sizes or ())] for c in counted]
    per_epoch_steps: list[int] = []
    first_counts: list[int] = []
    # An epoch's picture depends on e*S mod n per concept, so it repeats with a period: stop early.
    seen: dict[tuple[int, ...], int] = {}
    for e in range(max(epochs, 1)):
        key = tuple((e * c.samples) % c.n_images for c in counted)
        if key in seen:
            per_epoch_steps.append(per_epoch_steps[seen[key]])
            continue
        counts = [0] * len(buckets)
        for c, labels in zip(counted, labelled):
            for i, k in enumerate(_window_counts(labels, e * c.samples, c.samples, len(buckets))):
                counts[i] += k
        seen[key] = e
        if e == 0:
            first_counts = counts
        per_epoch_steps.append(sum(k // batch_size for k in counts))
    per_epoch_steps = per_epoch_steps[:epochs]
    spe = per_epoch_steps[0] if per_epoch_steps else sum(k // batch_size for k in first_counts)
    varies = len(set(per_epoch_steps)) > 1
    if varies:
        notes.append(
            f"steps per epoch vary between {min(per_epoch_steps)} and {max(per_epoch_steps)}: each epoch "
            "draws different images of a partly used concept, in different buckets"
        )
    bucket_rows = tuple((buckets[i], k) for i, k in enumerate(first_counts) if k)
    dropped = sum(k % batch_size for k in first_counts)
    return StepPlan(
        spe,
        sum(per_epoch_steps),
        epochs,
        batch_size,
        total_samples,
        per_concept,
        buckets=bucket_rows,
        dropped_per_epoch=dropped,
        varies_per_epoch=varies,
        exact=True,
        notes=tuple(notes),
    )


# The balancing calculator -----------------------------------------------------------------------
@dataclass(frozen=True)
class BalancingAdvice:
    wanted: int
    n_images: int
    value_text: str  # the shortest decimal whose floor gives exactly `wanted`
    naive_text: str  # wanted / n_images as the guide writes it (4 decimals, or Python's repr)
    naive_count: int  # what OneTrainer makes of the naive value
    samples_value: int  # the SAMPLES alternative: balancing = wanted, strategy SAMPLES


def balancing_for(wanted: int, n_images: int) -> BalancingAdvice:
    """The REPEATS balancing that yields exactly `wanted` samples of `n_images` per epoch."""
    if n_images <= 0:
        raise ValueError("the concept has no images")
    if wanted < 0:
        raise ValueError("wanted samples must not be negative")
    exact = Decimal(wanted) / Decimal(n_images)
    value_text = ""
    for digits in range(1, 28):
        q = Decimal(1).scaleb(-digits)
        candidate = exact.quantize(q, rounding=ROUND_CEILING)
        if samples_per_epoch(n_images, float(candidate)) == wanted:
            value_text = format(candidate.normalize(), "f")
            break
    if not value_text:  # cannot happen for sane inputs; fall back to the float that works
        value_text = repr(wanted / n_images)
    naive = wanted / n_images
    return BalancingAdvice(
        wanted=wanted,
        n_images=n_images,
        value_text=value_text,
        naive_text=repr(naive),
        naive_count=samples_per_epoch(n_images, naive),
        samples_value=wanted,
    )


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
    k = int(interval)
    if unit == "EPOCH":
        if k <= 0:
            return 0
        first = 0 if start_at_zero else 1
        return sum(1 for e in range(max(first, skip_first), epochs) if e % k == 0)
    if unit == "STEP":
        if k <= 0:
            return 0
        if start_at_zero:
            fired = (total_steps + k - 1) // k  # steps 0, k, 2k ... < total
            skipped = (skip_first + k - 1) // k if skip_first else 0
        else:
            fired = total_steps // k  # steps k-1, 2k-1, ...
            skipped = skip_first // k
        return max(0, fired - skipped)
    seconds = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0}.get(unit)
    if seconds is None or interval <= 0:
        return 0
    period = interval * seconds
    fired = int(loop_s // period) + (1 if start_at_zero else 0)
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
    write_bytes_per_s: float = 400e6
    write_source: str = ""
    sampling_speedup: float = 2.5
    sample_steps: int = 20
    sample_overhead_s: float = 2.0


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


def estimate_time(inp: TimeInputs) -> TimeEstimate:
    plan = inp.plan
    terms: list[Term] = []
    load = Term(
        "model load", 1, inp.model_load_s, inp.model_load_s, inp.model_load_s, inp.model_load_s, inp.model_load_source
    )
    terms.append(load)
    if inp.cache_items and inp.caching_items_per_s:
        cache_s = inp.cache_items / inp.caching_items_per_s
        terms.append(
            Term(
                "latent caching",
                inp.cache_items,
                1 / inp.caching_items_per_s,
                cache_s,
                cache_s,
                cache_s,
                inp.caching_source,
            )
        )
    else:
        terms.append(
            Term(
                "latent caching",
                inp.cache_items,
                None,
                0.0 if not inp.cache_items else None,
                None,
                None,
                inp.caching_source,
            )
        )
    if inp.rate is None or inp.rate.its <= 0:
        terms.append(Term("training steps", plan.total_steps, None, None, None, None, "no it/s known"))
        return TimeEstimate(tuple(terms), None, None, None, None)

    def scenario(its: float) -> tuple[float, list[Term]]:
        steps_s = plan.total_steps / its
        sample_each = _sample_seconds(inp, its)
        save_each = inp.save_bytes / inp.write_bytes_per_s if inp.write_bytes_per_s else 0.0
        backup_each = inp.backup_bytes / inp.write_bytes_per_s if inp.write_bytes_per_s else 0.0
        loop_s = steps_s
        for _ in range(8):  # time-based schedules depend on the loop's length, which they lengthen
            n_sample = action_count(
                inp.sampling.interval,
                inp.sampling.unit,
                epochs=plan.epochs,
                steps_per_epoch=plan.steps_per_epoch,
                loop_s=loop_s,
                start_at_zero=True,
                skip_first=inp.sampling.skip_first,
            )
            n_save = action_count(
                inp.saves.interval,
                inp.saves.unit,
                epochs=plan.epochs,
                steps_per_epoch=plan.steps_per_epoch,
                loop_s=loop_s,
                start_at_zero=False,
                skip_first=inp.saves.skip_first,
            )
            n_backup = action_count(
                inp.backups.interval,
                inp.backups.unit,
                epochs=plan.epochs,
                steps_per_epoch=plan.steps_per_epoch,
                loop_s=loop_s,
                start_at_zero=False,
            )
            new_loop = (
                steps_s + n_sample * inp.images_per_sample * sample_each + n_save * save_each + n_backup * backup_each
            )
            if abs(new_loop - loop_s) < 1e-6:
                break
            loop_s = new_loop
        n_final = 1 if inp.final_save else 0
        n_final_backup = 1 if inp.final_save and inp.backup_before_save else 0
        rows = [
            Term("training steps", plan.total_steps, 1 / its, steps_s, None, None, inp.rate.source),
            Term(
                "sampling",
                n_sample * inp.images_per_sample,
                sample_each,
                n_sample * inp.images_per_sample * sample_each,
                None,
                None,
                inp.sample_source,
            ),
            Term("saves", n_save + n_final, save_each, (n_save + n_final) * save_each, None, None, inp.write_source),
            Term(
                "backups",
                n_backup + n_final_backup,
                backup_each,
                (n_backup + n_final_backup) * backup_each,
                None,
                None,
                inp.write_source,
            ),
        ]
        return sum(r.seconds or 0.0 for r in rows), rows

    mid_s, rows = scenario(inp.rate.its)
    # The slow end of the range uses the low it/s, the fast end the high one.
    low_total = scenario(inp.rate.high)[0] if inp.rate.high else mid_s
    high_total = scenario(inp.rate.low)[0] if inp.rate.low else mid_s
    low_rows = scenario(inp.rate.high)[1] if inp.rate.high else rows
    high_rows = scenario(inp.rate.low)[1] if inp.rate.low else rows
    for r, lo, hi in zip(rows, low_rows, high_rows):
        terms.append(Term(r.name, r.count, r.each_s, r.seconds, lo.seconds, hi.seconds, r.source))
    fixed = sum(t.seconds or 0.0 for t in terms[:2])
    return TimeEstimate(
        tuple(terms), fixed + mid_s, fixed + low_total, fixed + high_total, plan.total_steps / inp.rate.its
    )


def cache_items(concepts: Sequence[ConceptPlan], epochs: int) -> int:
    """Images the VAE encodes: every image of a counted concept, once per image variation used."""
    total = 0
    for c in concepts:
        if not c.counts or c.n_images <= 0 or c.samples <= 0:
            continue
        drawn = c.samples * max(epochs, 1)
        used_variations = min(max(c.image_variations, 1), max(1, math.ceil(drawn / c.n_images)))
        total += c.n_images * used_variations
    return total


# Reading a running OneTrainer's log -------------------------------------------------------------
@dataclass(frozen=True)
class LogPrediction:
    epoch: float | None
    epochs: float | None
    step: float | None
    steps_in_epoch: float | None
    remaining_s: float | None
    basis: str  # which bar the prediction comes from
    epoch_s: float | None = None
    step_its: float | None = None
    loss: str | None = None


def predict_from_bars(epoch_bar, step_bar) -> LogPrediction:
    """Remaining time of a run from its latest `epoch` and `step` bar states (tqdm_parse.BarUpdate).

    The epoch bar's rate is wall time per epoch, so it already holds that run's per-epoch sampling,
    saves and backups; within the current epoch the step bar is finer.
    """
    epoch_s = epoch_bar.s_per_it if epoch_bar is not None else None
    step_its = step_bar.rate_its if step_bar is not None else None
    loss = None
    for bar in (step_bar, epoch_bar):
        if bar is not None and bar.postfix:
            loss = bar.postfix.get("smooth loss") or bar.postfix.get("loss") or loss
    epochs_left = None
    if epoch_bar is not None and epoch_bar.total is not None:
        epochs_left = epoch_bar.total - epoch_bar.n
    if epoch_bar is not None and epoch_s and epochs_left is not None:
        remaining = epochs_left * epoch_s
        basis = "epoch bar rate (wall time per epoch, overheads included)"
        if step_bar is not None and step_bar.total and step_its:
            # The current epoch is partly done: replace its share by what the step bar says.
            this_epoch_left = (step_bar.total - step_bar.n) / step_its
            remaining = max(epochs_left - 1, 0) * epoch_s + min(this_epoch_left, epoch_s)
            basis = "epoch bar rate for whole epochs + step bar for the current one"
        return LogPrediction(
            epoch_bar.n,
            epoch_bar.total,
            step_bar.n if step_bar else None,
            step_bar.total if step_bar else None,
            remaining,
            basis,
            epoch_s,
            step_its,
            loss,
        )
    if step_bar is not None and step_its and step_bar.total:
        remaining = (step_bar.total - step_bar.n) / step_its
        total_epochs = epoch_bar.total if epoch_bar is not None else None
        if epochs_left is not None and epochs_left > 1:
            remaining += (epochs_left - 1) * step_bar.total / step_its
        return LogPrediction(
            epoch_bar.n if epoch_bar else None,
            total_epochs,
            step_bar.n,
            step_bar.total,
            remaining,
            "step bar rate (steps only, overheads not included)",
            None,
            step_its,
            loss,
        )
    if epoch_bar is not None and epoch_bar.remaining_s is not None:
        return LogPrediction(
            epoch_bar.n,
            epoch_bar.total,
            None,
            None,
            epoch_bar.remaining_s,
            "tqdm's own remaining time",
            epoch_s,
            None,
            loss,
        )
    return LogPrediction(None, None, None, None, None, "no usable progress bar")
