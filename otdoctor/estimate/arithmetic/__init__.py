"""How many steps a OneTrainer run has and how long it will take. Pure arithmetic: no process, no
file but the shipped tables.

Step arithmetic (`steps`) follows OneTrainer (mgds RamCache/DiskCache, AspectBucketing, AspectBatchSorting):
- samples per epoch of a concept: REPEATS -> `floor(n_images * balancing)` in float arithmetic
  (so `floor(77 * (10/77))` is 9), SAMPLES -> `int(balancing)`; disabled and VALIDATION concepts
  add nothing;
- epoch `e` of a concept takes the samples at positions `e*S .. e*S+S-1` of its (sorted) image list,
  wrapping around, so which images an epoch sees, and so their buckets, can change per epoch;
- every sample lands in an aspect bucket (its crop resolution); each bucket drops its incomplete
  batch: steps = sum over buckets of floor(n_bucket / batch_size).

The time model (`timing`) adds: model load + latent caching + steps / it/s + sampling + saves and
backups, counting actions the way OneTrainer's TimedActionMixin fires them. `bars` predicts the rest
of a running training from its progress bars.

Import the names from here: the submodules are how the package is organised, not its interface.
"""

from otdoctor.estimate.arithmetic.bars import LogPrediction, predict_from_bars
from otdoctor.estimate.arithmetic.steps import (
    BUCKET_QUANTIZATION,
    BalancingAdvice,
    ConceptPlan,
    StepPlan,
    balancing_for,
    bucket_for,
    bucket_resolutions,
    cache_items,
    parse_resolution,
    plan_steps,
    samples_per_epoch,
)
from otdoctor.estimate.arithmetic.timing import (
    Rate,
    Schedule,
    Term,
    TimeEstimate,
    TimeInputs,
    action_count,
    estimate_time,
)

__all__ = [
    "BUCKET_QUANTIZATION",
    "BalancingAdvice",
    "ConceptPlan",
    "LogPrediction",
    "Rate",
    "Schedule",
    "StepPlan",
    "Term",
    "TimeEstimate",
    "TimeInputs",
    "action_count",
    "balancing_for",
    "bucket_for",
    "bucket_resolutions",
    "cache_items",
    "estimate_time",
    "parse_resolution",
    "plan_steps",
    "predict_from_bars",
    "samples_per_epoch",
]
