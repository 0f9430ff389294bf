"""Issue 12: `otdoctor estimate` stays calm on any config and any numbers, and answers in bounded time.

Generated configs and option values go through `plan.build` (what the CLI calls): the outcome is an
estimate or a one-line UserError (exit 1 or 2), never another exception, and never slow: the work is
closed-form in epochs and steps. A few dozen go end to end through the real entry point. The step
arithmetic is compared with a plain epoch-by-epoch simulation of OneTrainer's sampling.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from otdoctor.errors import UserError
from otdoctor.estimate import arithmetic as est
from otdoctor.estimate.plan import EstimateRequest, build
from tests.estimate.strategies import concept_file, config_texts, isolated_env
from tests.support.calm import assert_calm, run_main
from tests.support.trainingdata import concept, full_config

ROOT = Path(tempfile.mkdtemp(prefix="otdoctor-estimate-props-"))
FOLDER = ROOT / "data" / "me"
FOLDER.mkdir(parents=True)
for i, size in enumerate([(64, 64), (64, 128), (128, 64)]):
    Image.new("RGB", size, (i, 0, 0)).save(FOLDER / f"{i}.png")
concept_file(ROOT, [concept("me", str(FOLDER))])
CONFIG = ROOT / "config.json"
ENV = isolated_env(ROOT)


def calm_build(req: EstimateRequest) -> None:
    """build() gives an estimate with finite figures, or one line the user can act on."""
    started = time.monotonic()
    try:
        out = build(req)
    except UserError as exc:
        assert exc.exit_code in (1, 2) and "\n" not in exc.message, exc.message
    else:
        json.dumps(out.to_dict(), allow_nan=False).encode("utf-8")  # what --format json prints
    assert time.monotonic() - started < 1.0


# Configs --------------------------------------------------------------------------------------------
@pytest.mark.property
@given(config_texts(str(FOLDER)))
@example(json.dumps(full_config(epochs=99999999999, concepts=[concept("me", str(FOLDER))])))
@example(json.dumps(full_config(resolution="1", concepts=[concept("me", str(FOLDER))])))
@example(json.dumps(full_config(learning_rate="SECOND")))
@example(json.dumps(full_config(concepts=[concept("me", str(FOLDER), balancing="inf")])))
@example(json.dumps(full_config(concepts=[concept("me", "~nosuchuser/x")])))
@example('{"epochs": ' + "9" * 5000 + "}")
@example("[" * 100_000)
def test_any_config(text: str) -> None:
    CONFIG.write_text(text, encoding="utf-8", errors="surrogatepass")
    calm_build(EstimateRequest(config=CONFIG, ot_dir=ROOT, its=1.0))


def test_ten_million_epochs_with_buckets_and_saves_is_fast() -> None:
    cfg = full_config(
        epochs=10_000_000,
        batch_size=2,
        resolution="512",
        save_every=1,
        save_every_unit="EPOCH",
        concepts=[concept("me", str(FOLDER), balancing=0.67)],
    )
    CONFIG.write_text(json.dumps(cfg))
    started = time.monotonic()
    out = build(EstimateRequest(config=CONFIG, ot_dir=ROOT, its=1000.0))
    assert time.monotonic() - started < 0.1
    assert out.plan.epochs == 10_000_000 and out.plan.total_steps == 0  # 2 samples land in 2 buckets
    saves = next(t for t in out.time.terms if t.name == "saves")
    assert saves.count == 10_000_000  # every epoch but the first, plus the final save


# Numeric options -------------------------------------------------------------------------------------
EXTREME = [0.0, -0.0, -1.0, 1e-300, 1e300, 1e-6, 1e6, 1e9, 1e12, math.inf, -math.inf, math.nan]


@st.composite
def number(draw: st.DrawFn, low: float, high: float) -> float | None:
    """Mostly absent or sensible (so the arithmetic runs), sometimes anything a user can type."""
    mode = draw(st.integers(0, 39))
    if mode == 0:
        return draw(st.sampled_from(EXTREME) | st.floats())
    return None if mode < 20 else draw(st.floats(low, high))


@st.composite
def count(draw: st.DrawFn, low: int, high: int) -> int | None:
    mode = draw(st.integers(0, 39))
    if mode == 0:
        return draw(st.sampled_from([-5, 0, 10**7 + 1, 10**8, 10**12, 10**300]))
    return None if mode < 16 else draw(st.integers(low, high))


UNIT_NAMES = ["NEVER", "EPOCH", "STEP", "SECOND", "MINUTE", "HOUR", "ALWAYS", "step"]
UNITS = st.none() | st.sampled_from(UNIT_NAMES * 3 + ["foo"])


@st.composite
def requests(draw: st.DrawFn) -> EstimateRequest:
    start = draw(st.none() | st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)))
    return EstimateRequest(
        images=draw(st.integers(1, 10**6) | count(1, 10**6)),
        reg=draw(count(0, 10**6)),
        balancing=draw(number(0, 10)),
        want=draw(count(0, 10**6)),
        strategy=draw(st.just("repeats") | st.sampled_from(["samples", "SAMPLES", "bogus"])),
        epochs=draw(st.integers(0, 10**7) | count(0, 10**7)),
        batch_size=draw(count(1, 64)),
        its=draw(number(1e-3, 100)),
        gpu=draw(st.none() | st.sampled_from(["RTX 4090", "H100", "no such gpu"])),
        model=draw(st.none() | st.sampled_from(["sdxl", "sd15", "tiny"] * 3 + ["bogus"])),
        resolution=draw(st.none() | st.sampled_from(["1024", "512", "768,1024", "832x1216"] * 3 + ["1", "0", "x"])),
        sample_every=draw(number(0, 1000)),
        sample_unit=draw(UNITS),
        save_every=draw(number(0, 1000)),
        save_unit=draw(UNITS),
        backup_every=draw(number(0, 1000)),
        backup_unit=draw(UNITS),
        load_s=draw(number(0, 1000)),
        caching_rate=draw(number(1e-3, 100)),
        write_mbps=draw(number(1, 10_000)),
        sample_s=draw(number(0, 100)),
        save_gb=draw(number(0, 100)),
        start=start.astimezone(dt.timezone.utc) if start and 1900 < start.year < 2200 else None,
    )


@pytest.mark.property
@given(requests())
@example(EstimateRequest(images=10, epochs=1, load_s=1e300))
@example(EstimateRequest(images=10, epochs=1, its=1e-300))
@example(EstimateRequest(images=10, epochs=100_000_000, save_every=1, save_unit="EPOCH", its=1))
@example(EstimateRequest(images=10**9, epochs=10**7, its=1e-6))
def test_any_numbers(req: EstimateRequest) -> None:
    calm_build(req)


@pytest.mark.parametrize(
    "args,said",
    [
        (["--load-s", "1e300"], "--load-s must be at most 1e+07: no real run has 1e+300"),
        (["--its", "1e-300"], "--its must be between 1e-06 and 1e+06 it/s (steps per second), got 1e-300"),
        (["--start", "9999-12-31T23:59"], "--start 9999-12-31T23:59 is more than 100 years from now"),
        (["--start", "0001-01-01T00:00"], "--start 0001-01-01T00:00 is more than 100 years from now"),
        (["--epochs", "100000000", "--save-every", "1", "--save-unit", "EPOCH"], "--epochs must be at most 1e+07"),
        (["--images", "1000000000", "--epochs", "10000000", "--its", "0.000001"], "more than 100 years"),
    ],
)
def test_absurd_numbers_are_one_line_usage_errors(args: list[str], said: str) -> None:
    base = {"--images": "10", "--epochs": "1", "--its": "1"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    run = run_main(["estimate", *[x for kv in base.items() for x in kv]], ENV)
    assert_calm(run, limit_s=1.0)
    assert run.code == 2 and run.out == "" and said in run.err.splitlines()[0], run.err


def test_save_every_epoch_for_ten_million_epochs_answers_at_once() -> None:
    argv = ["estimate", "--images", "10", "--epochs", "10000000", "--save-every", "1", "--save-unit", "EPOCH"]
    started = time.monotonic()
    run = run_main([*argv, "--its", "1000", "--format", "json"], ENV)
    assert time.monotonic() - started < 0.5 and run.code == 0, run.err
    saves = next(t for t in json.loads(run.out)["terms"] if t["name"] == "saves")
    assert saves["count"] == 10_000_000  # epochs 1 .. 9,999,999 and the final save


@pytest.mark.property
@settings(max_examples=40)
@given(requests())
def test_end_to_end_numbers(req: EstimateRequest) -> None:
    argv = ["estimate", "--strategy", req.strategy]
    for name in ("images", "reg", "balancing", "want", "epochs", "batch_size", "its", "gpu", "model", "resolution"):
        value = getattr(req, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    for name in ("sample_every", "save_every", "backup_every", "load_s", "write_mbps", "sample_s", "save_gb"):
        value = getattr(req, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", repr(value)]
    run = run_main(argv, ENV)
    assert_calm(run, limit_s=2.0)


# The step arithmetic against a plain simulation --------------------------------------------------------
def simulated_steps(concepts: list[est.ConceptPlan], labels: list[list[int]], epochs: int, batch: int) -> int:
    """OneTrainer's sampling, epoch by epoch: concept c's epoch e takes images e*S .. e*S+S-1 (wrapping);
    every bucket drops its incomplete batch."""
    total = 0
    for e in range(epochs):
        per_bucket: dict[int, int] = {}
        for c, lab in zip(concepts, labels, strict=True):
            for i in range(e * c.samples, e * c.samples + c.samples):
                b = lab[i % c.n_images]
                per_bucket[b] = per_bucket.get(b, 0) + 1
        total += sum(k // batch for k in per_bucket.values())
    return total


SIZES = [(64, 64), (64, 128), (128, 64), (96, 64)]


@pytest.mark.property
@given(
    st.lists(
        st.tuples(st.lists(st.sampled_from(SIZES), min_size=1, max_size=9), st.floats(0.05, 3.0)),
        min_size=1,
        max_size=3,
    ),
    st.integers(0, 40),
    st.integers(1, 4),
)
def test_bucketed_steps_match_an_epoch_by_epoch_simulation(spec, epochs: int, batch: int) -> None:
    concepts = [
        est.ConceptPlan(f"c{i}", len(sizes), bal, image_sizes=tuple(sizes)) for i, (sizes, bal) in enumerate(spec)
    ]
    plan = est.plan_steps(concepts, epochs, batch, "128", True, 64)
    buckets = est.bucket_resolutions(128, 64)
    counted = [c for c in concepts if c.samples > 0]
    labels = [[buckets.index(est.bucket_for(w, h, buckets)) for w, h in c.image_sizes or ()] for c in counted]
    assert plan.total_steps == simulated_steps(counted, labels, epochs, batch)
