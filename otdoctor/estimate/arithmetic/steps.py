"""How many steps a OneTrainer run has, and the balancing that yields a wanted sample count."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from itertools import accumulate

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
            # at least one quantum a side: a small target would otherwise round a side to 0 px
            out.add(
                (
                    max(1, round(a * scale / quantization)) * quantization,
                    max(1, round(b * scale / quantization)) * quantization,
                )
            )
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


@dataclass(frozen=True)
class _Run:
    """What every step plan starts from: the concepts that count, the epochs and the batch size."""

    counted: tuple[ConceptPlan, ...]
    per_concept: tuple[tuple[str, int, str | None], ...]
    epochs: int
    batch_size: int
    resolution: str

    @property
    def total_samples(self) -> int:
        return sum(c.samples for c in self.counted)

    @property
    def sizes_known(self) -> bool:
        return all(c.image_sizes is not None and len(c.image_sizes) == c.n_images for c in self.counted)


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
    run = _Run(
        tuple(c for c in concepts if c.counts and c.samples > 0 and c.n_images > 0),
        tuple((c.name, c.samples, c.why_left_out()) for c in concepts),
        epochs,
        batch_size,
        resolution,
    )
    targets, fixed = parse_resolution(resolution)
    sizes_known = run.sizes_known
    if fixed is not None or not aspect_ratio_bucketing or not sizes_known or len(targets) > 1:
        return _one_bucket_plan(run, targets, fixed, aspect_ratio_bucketing and fixed is None, sizes_known)
    return _bucketed_plan(run, bucket_resolutions(targets[0], quantization))


def _one_bucket_plan(
    run: _Run, targets: list[int], fixed: tuple[int, int] | None, bucketing: bool, sizes_known: bool
) -> StepPlan:
    """One bucket (every image cropped to the same size), or sizes unknown: one remainder dropped."""
    total_samples = run.total_samples
    spe = total_samples // run.batch_size
    notes: list[str] = []
    if bucketing and not sizes_known and run.counted:
        notes.append(
            "image sizes unknown: assumed one aspect bucket (all images the same size); "
            "pass --config to count bucket drops"
        )
    if bucketing and len(targets) > 1:
        notes.append(f"several target resolutions ({run.resolution}): OneTrainer picks one at random per image")
    bucket = fixed or ((targets[0], targets[0]) if targets else (0, 0))
    return StepPlan(
        spe,
        spe * run.epochs,
        run.epochs,
        run.batch_size,
        total_samples,
        run.per_concept,
        buckets=((bucket, total_samples),) if run.counted else (),
        dropped_per_epoch=total_samples - spe * run.batch_size,
        exact=not notes,
        notes=tuple(notes),
    )


# Epochs computed one by one at most; beyond, a repeating pattern is multiplied out, or (a period
# longer than this) the rest is extrapolated from their mean: the work never grows with the epochs.
_EXACT_EPOCHS = 2000


def _prefix_counts(labels: Sequence[int], n_labels: int) -> list[list[int]]:
    """For each label, how many of the first i positions carry it (i = 0..n)."""
    return [list(accumulate((1 if lab == want else 0 for lab in labels), initial=0)) for want in range(n_labels)]


def _window_counts(prefix: Sequence[Sequence[int]], start: int, count: int) -> list[int]:
    """How many of positions start..start+count-1 (wrapping over the list) carry each label."""
    n = len(prefix[0]) - 1 if prefix else 0
    if n == 0 or count <= 0:
        return [0] * len(prefix)
    full, rest = divmod(count, n)
    s = start % n
    end = s + rest
    out = []
    for pre in prefix:
        k = pre[n] * full + pre[min(end, n)] - pre[s]
        out.append(k + (pre[end - n] if end > n else 0))
    return out


def _period(run: _Run) -> int:
    """Epochs after which every concept's window starts at the same image again (capped above)."""
    period = 1
    for c in run.counted:
        period = math.lcm(period, c.n_images // math.gcd(c.samples % c.n_images, c.n_images))
        if period > _EXACT_EPOCHS:
            break
    return period


@dataclass(frozen=True)
class _EpochSteps:
    first: int
    total: int
    low: int
    high: int
    first_counts: list[int]
    exact: bool


def _steps_each_epoch(run: _Run, labelled: Sequence[Sequence[int]], n_buckets: int) -> _EpochSteps:
    """Steps of the first epoch, of all epochs, the fewest and most, and the first epoch's buckets."""
    prefixes = [_prefix_counts(labels, n_buckets) for labels in labelled]

    def epoch(e: int) -> list[int]:
        counts = [0] * n_buckets
        for c, prefix in zip(run.counted, prefixes, strict=True):
            for i, k in enumerate(_window_counts(prefix, e * c.samples, c.samples)):
                counts[i] += k
        return counts

    period = _period(run)
    first_counts = epoch(0)
    done = min(max(run.epochs, 1), period, _EXACT_EPOCHS)
    steps = [sum(k // run.batch_size for k in first_counts)] + [
        sum(k // run.batch_size for k in epoch(e)) for e in range(1, done)
    ]
    if run.epochs <= done:
        total, exact = sum(steps[: run.epochs]), True
    elif period <= done:
        full, rest = divmod(run.epochs, period)
        total, exact = full * sum(steps) + sum(steps[:rest]), True
    else:
        total, exact = sum(steps) + round(sum(steps) / done * (run.epochs - done)), False
    return _EpochSteps(steps[0], total, min(steps), max(steps), first_counts, exact)


def _bucketed_plan(run: _Run, buckets: list[tuple[int, int]]) -> StepPlan:
    index = {b: i for i, b in enumerate(buckets)}
    labelled = [[index[bucket_for(w, h, buckets)] for (w, h) in (c.image_sizes or ())] for c in run.counted]
    each = _steps_each_epoch(run, labelled, len(buckets))
    varies = each.low != each.high
    notes: list[str] = []
    if varies:
        notes.append(
            f"steps per epoch vary between {each.low} and {each.high}: each epoch "
            "draws different images of a partly used concept, in different buckets"
        )
    if not each.exact:
        notes.append(
            f"the first {_EXACT_EPOCHS} epochs counted exactly; the rest from their mean "
            "(the images each epoch draws repeat only after more epochs than that)"
        )
    return StepPlan(
        each.first,
        each.total,
        run.epochs,
        run.batch_size,
        run.total_samples,
        run.per_concept,
        buckets=tuple((buckets[i], k) for i, k in enumerate(each.first_counts) if k),
        dropped_per_epoch=sum(k % run.batch_size for k in each.first_counts),
        varies_per_epoch=varies,
        exact=each.exact,
        notes=tuple(notes),
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
