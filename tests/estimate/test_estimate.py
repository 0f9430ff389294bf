"""Step arithmetic and the time model against hand-computed cases, and `otdoctor estimate` itself."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from otdoctor.estimate import arithmetic as est

GUIDE_LINE = "epoch:   2%|▍                                | 3/200 [13:46<11:15:41, 205.79s/it]s=0.122]"


def guide_concepts():
    return [est.ConceptPlan("me", 36), est.ConceptPlan("reg", 5000, 0.0072)]


# Steps -----------------------------------------------------------------------------------------
def test_guide_example_steps():
    plan = est.plan_steps(guide_concepts(), epochs=200, batch_size=1)
    assert plan.steps_per_epoch == 72
    assert plan.total_steps == 14_400


def test_77_10_trap_and_the_calculator():
    # 10 regularisation samples wanted out of 77: the plain division floors to 9.
    assert est.samples_per_epoch(77, 10 / 77) == 9
    advice = est.balancing_for(10, 77)
    assert advice.naive_count == 9
    assert math.floor(77 * float(advice.value_text)) == 10
    assert est.samples_per_epoch(77, float(advice.value_text)) == 10
    assert advice.value_text == "0.13"
    assert advice.samples_value == 10


def test_calculator_keeps_exact_guide_value():
    advice = est.balancing_for(36, 5000)
    assert advice.value_text == "0.0072"
    assert advice.naive_count == 36


@pytest.mark.parametrize("wanted,n", [(1, 3), (7, 9), (36, 4999), (100, 101), (5, 5000), (0, 10)])
def test_calculator_value_always_floors_to_the_wanted_count(wanted, n):
    advice = est.balancing_for(wanted, n)
    assert est.samples_per_epoch(n, float(advice.value_text)) == wanted


def test_samples_strategy_ignores_image_count():
    c = est.ConceptPlan("reg", 5000, 36.9, "SAMPLES")
    assert c.samples == 36  # int(), not round()
    plan = est.plan_steps([est.ConceptPlan("me", 36), c], epochs=10, batch_size=1)
    assert plan.steps_per_epoch == 72


def test_disabled_and_validation_concepts_are_left_out():
    concepts = guide_concepts() + [
        est.ConceptPlan("old", 500, enabled=False),
        est.ConceptPlan("val", 20, type="VALIDATION"),
    ]
    plan = est.plan_steps(concepts, epochs=200, batch_size=1)
    assert plan.total_steps == 14_400
    reasons = {name: why for name, _, why in plan.per_concept}
    assert reasons == {"me": None, "reg": None, "old": "disabled", "val": "validation concept"}


def test_batch_size_drops_remainder_in_single_bucket():
    plan = est.plan_steps([est.ConceptPlan("me", 37)], epochs=3, batch_size=4)
    assert (plan.steps_per_epoch, plan.total_steps, plan.dropped_per_epoch) == (9, 27, 1)


def test_sdxl_buckets_match_onetrainer_quantisation():
    buckets = est.bucket_resolutions(1024, 64)
    assert (1024, 1024) in buckets
    assert (1280, 832) in buckets and (832, 1280) in buckets  # 1:1.5 -> 836x1254 quantised to 64
    assert (768, 1344) in buckets
    assert est.bucket_for(832, 1216, buckets) == (1280, 832)  # portrait 832 wide x 1216 high
    assert est.bucket_for(1344, 768, buckets) == (768, 1344)


def test_bucket_drops_with_batch_size_4():
    # 6 square + 5 portrait in one concept, 3 landscape in another, batch 4:
    # square 6 -> 1 batch (2 dropped), portrait 5 -> 1 (1 dropped), landscape 3 -> 0 (3 dropped).
    a = est.ConceptPlan("me", 11, image_sizes=((1024, 1024),) * 6 + ((832, 1216),) * 5)
    b = est.ConceptPlan("reg", 3, image_sizes=((1344, 768),) * 3)
    plan = est.plan_steps([a, b], epochs=10, batch_size=4, resolution="1024")
    assert plan.steps_per_epoch == 2
    assert plan.total_steps == 20
    assert plan.dropped_per_epoch == 6
    assert dict(plan.buckets) == {(1024, 1024): 6, (1280, 832): 5, (768, 1344): 3}
    # Without bucketing everything is one crop size: floor(14 / 4).
    flat = est.plan_steps([a, b], epochs=10, batch_size=4, resolution="1024", aspect_ratio_bucketing=False)
    assert flat.steps_per_epoch == 3


def test_partly_used_concept_changes_buckets_per_epoch():
    # Balancing 0.5 of [sq, sq, portrait, portrait] takes images 0-1 in epoch 0 and 2-3 in epoch 1;
    # with 2 more squares elsewhere and batch 2: epoch 0 has 4 squares (2 steps), epoch 1 has
    # 2 squares + 2 portraits (2 steps); with batch 4: 1 step, then 0 steps.
    part = est.ConceptPlan("reg", 4, 0.5, image_sizes=((512, 512),) * 2 + ((512, 768),) * 2)
    other = est.ConceptPlan("me", 2, image_sizes=((512, 512),) * 2)
    plan = est.plan_steps([other, part], epochs=4, batch_size=4, resolution="512", quantization=8)
    assert plan.total_steps == 1 + 0 + 1 + 0
    assert plan.varies_per_epoch


# Time ------------------------------------------------------------------------------------------
def test_action_counts_follow_onetrainer():
    # save every 15 epochs over 200 (not at epoch 0): 15, 30, ..., 195
    assert est.action_count(15, "EPOCH", epochs=200, steps_per_epoch=72, loop_s=0, start_at_zero=False) == 13
    # sample every 10 steps from step 0 over 100 steps: 0, 10, ..., 90
    assert est.action_count(10, "STEP", epochs=1, steps_per_epoch=100, loop_s=0, start_at_zero=True) == 10
    assert est.action_count(10, "STEP", epochs=1, steps_per_epoch=100, loop_s=0, start_at_zero=False) == 10
    # every 10 minutes over 65 minutes, plus the one at the start
    assert est.action_count(10, "MINUTE", epochs=1, steps_per_epoch=1000, loop_s=65 * 60, start_at_zero=True) == 7
    assert est.action_count(30, "MINUTE", epochs=1, steps_per_epoch=1000, loop_s=65 * 60, start_at_zero=False) == 2
    # the clock is read once a step: every 1e-300 s over 1000 steps still fires at most once a step
    assert est.action_count(1e-300, "SECOND", epochs=1, steps_per_epoch=1000, loop_s=60, start_at_zero=True) == 1001
    assert est.action_count(5, "NEVER", epochs=9, steps_per_epoch=9, loop_s=1e9, start_at_zero=True) == 0


def test_guide_time_for_steps():
    plan = est.plan_steps(guide_concepts(), epochs=200, batch_size=1)
    t = est.estimate_time(est.TimeInputs(plan=plan, rate=est.Rate(1.13, source="--its"), final_save=False))
    steps = next(term for term in t.terms if term.name == "training steps")
    assert steps.seconds == pytest.approx(14_400 / 1.13)
    assert int(round(steps.seconds)) == 3 * 3600 + 32 * 60 + 23
    assert t.total_s == pytest.approx(14_400 / 1.13)


def test_time_terms_add_up_with_saves_and_range():
    plan = est.plan_steps([est.ConceptPlan("me", 100)], epochs=10, batch_size=1)
    inp = est.TimeInputs(
        plan=plan,
        rate=est.Rate(2.0, 1.6, 2.5, "smoke"),
        model_load_s=30,
        cache_items=100,
        caching_items_per_s=10,
        sampling=est.Schedule(5, "EPOCH"),
        sample_s=4.0,
        saves=est.Schedule(2, "EPOCH"),
        save_bytes=int(2e9),
        write_bytes_per_s=1e9,
        final_save=True,
    )
    t = est.estimate_time(inp)
    by = {term.name: term for term in t.terms}
    assert by["training steps"].seconds == pytest.approx(500)
    assert by["sampling"].count == 2 and by["sampling"].seconds == pytest.approx(8)  # epochs 0 and 5
    assert by["saves"].count == 4 + 1  # epochs 2, 4, 6, 8 and the final save
    assert by["saves"].seconds == pytest.approx(10)
    assert t.total_s == pytest.approx(30 + 10 + 500 + 8 + 10)
    assert t.low_s == pytest.approx(30 + 10 + 1000 / 2.5 + 8 + 10)
    assert t.high_s == pytest.approx(30 + 10 + 1000 / 1.6 + 8 + 10)


def test_from_log_guide_line():
    from otdoctor.estimate.progress_bars import parse_bar

    p = est.predict_from_bars(parse_bar(GUIDE_LINE), None)
    assert p.remaining_s == pytest.approx(197 * 205.79)
    assert p.epoch == 3 and p.epochs == 200


# The command -----------------------------------------------------------------------------------
def test_cli_guide_example_text(run_cli):
    r = run_cli("estimate", "--images", "36", "--reg", "5000", "--epochs", "200", "--its", "1.13")
    assert r.returncode == 0, r.stderr
    assert "72 steps per epoch" in r.stdout
    assert "14,400 steps" in r.stdout
    assert "3 h 32 min 23 s" in r.stdout
    assert "0.0072" in r.stdout
    assert "--its" in r.stdout  # where the speed comes from


def test_cli_json_and_finish_time(run_cli):
    r = run_cli(
        "estimate",
        "--images",
        "36",
        "--reg",
        "5000",
        "--epochs",
        "200",
        "--its",
        "1.13",
        "--sample-unit",
        "NEVER",
        "--backup-unit",
        "NEVER",
        "--write-mbps",
        "1000",
        "--save-gb",
        "7",
        "--load-s",
        "60",
        "--caching-rate",
        "10",
        "--start",
        "2026-01-01T08:00:00+00:00",
        "--format",
        "json",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["steps"]["per_epoch"] == 72 and data["steps"]["total"] == 14400
    terms = {t["name"]: t for t in data["terms"]}
    assert terms["training steps"]["seconds"] == pytest.approx(14400 / 1.13)
    assert terms["latent caching"]["seconds"] == pytest.approx(5036 / 10)
    assert terms["saves"]["count"] == 1 and terms["saves"]["seconds"] == pytest.approx(7)
    assert terms["backups"]["count"] == 1  # OneTrainer backs up before the final save by default
    total = 60 + 503.6 + 14400 / 1.13 + 7 + terms["backups"]["seconds"]
    assert data["total_s"] == pytest.approx(total)
    finish = dt.datetime.fromisoformat(data["finish"])
    assert finish == dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=round(total))
    assert data["its_source"] == "--its (given)"
    assert data["balancing"]["repeats_value"] == "0.0072"


def test_cli_rough_table_is_labelled_rough(run_cli):
    r = run_cli("estimate", "--images", "20", "--epochs", "10", "--gpu", "NVIDIA GeForce RTX 4090")
    assert r.returncode == 0, r.stderr
    assert "ROUGH" in r.stdout and "RTX 4090" in r.stdout
    r = run_cli("estimate", "--images", "20", "--epochs", "10", "--gpu", "Voodoo 3")
    assert r.returncode == 2
    assert "no rough reference speed" in r.stderr and "Traceback" not in r.stderr


def test_cli_without_speed_still_counts_steps(run_cli):
    r = run_cli("estimate", "--images", "10", "--reg", "77", "--epochs", "5")
    assert r.returncode == 0, r.stderr
    assert "100 steps" in r.stdout
    assert "gives floor = 9, not 10" in r.stdout
    assert "no it/s known" in r.stdout


def test_cli_bad_input_is_one_line(run_cli):
    r = run_cli("estimate", "--images", "10")
    assert r.returncode == 2 and "--epochs" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("estimate", "--from-log", "/nonexistent/log.txt")
    assert r.returncode == 2 and "cannot read" in r.stderr


@pytest.mark.parametrize(
    "args,named",
    [
        (["--images", "-3", "--epochs", "0", "--its", "0"], "--images must be 0 or more"),
        (["--images", "0"], "--images must be at least 1"),
        (["--reg", "-5"], "--reg must be 0 or more"),  # was an internal error
        (["--reg", "5", "--want", "-1"], "--want must be 0 or more"),  # was an internal error
        (["--reg", "10", "--balancing", "-1"], "--balancing must be 0 or more"),  # was "-10 samples per epoch"
        (["--its", "nan"], "--its must be between 1e-06 and 1e+06 it/s"),  # was an internal error
        (["--its", "inf"], "--its must be between 1e-06 and 1e+06 it/s"),  # was an internal error (division by zero)
        (["--its", "1e-300"], "--its must be between 1e-06 and 1e+06 it/s"),  # was "a positive number"
        (["--write-mbps", "0"], "--write-mbps must be between 1e-06 and 1e+09 MB/s"),
        (["--resolution", "abc"], "--resolution wants pixels"),  # was "invalid literal for int()"
        (["--resolution", "0"], "--resolution wants pixels"),
        (["--sample-unit", "FOO"], "--sample-unit is one of"),  # was silently no sampling
        (["--load-s", "-5"], "--load-s must be 0 or more"),  # was a negative time in the table
        (["--strategy", "bogus"], "--strategy is repeats or samples"),
    ],
)
def test_cli_impossible_numbers_are_one_line_usage_errors(run_cli, args, named):
    base = {"--images": "10", "--epochs": "1", "--its": "1"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    r = run_cli("estimate", *[x for kv in base.items() for x in kv])
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [f"otdoctor: error: {lines[0].split('error: ', 1)[-1]}"] and named in lines[0], r.stderr
    assert r.stdout == ""


def _png(path: Path, w: int, h: int) -> None:
    Image.new("RGB", (w, h), (120, 80, 40)).save(path)


@pytest.mark.parametrize(
    "settings,named",
    [
        ({"epochs": "ten"}, 'c.json: epochs "ten" is not a whole number'),  # was an internal error
        (
            {"concepts": [{"name": "me", "path": "me", "balancing": "x"}]},
            'concept 1 ("me") in the config: balancing "x" is not a finite number',
        ),
        ({"resolution": "abc"}, 'resolution "abc" is not pixels like 1024'),  # was "invalid literal for int()"
        ({"batch_size": 0}, "batch_size 0 is below 1"),  # was "--batch-size must be ..." though none was passed
        ({"epochs": 99999999999}, "epochs 99999999999 is beyond 10,000,000: no real run has that"),  # never ended
        (
            {"concepts": [{"name": "me", "path": "me", "balancing": "inf"}]},
            'balancing "inf" is not a finite number',
        ),  # was OverflowError
        ({"learning_rate": "SECOND"}, 'learning_rate "SECOND" is not a finite number'),  # was TypeError
        ({"resolution": "1"}, 'resolution "1" has 1 px, outside 64..16384'),  # was ZeroDivisionError
    ],
)
def test_cli_hand_edited_config_values_are_one_line(run_cli, tmp_path, settings, named):
    (tmp_path / "me").mkdir()
    _png(tmp_path / "me" / "a.png", 64, 64)
    config = {"epochs": 2, "batch_size": 1, "resolution": "512", "concepts": [{"name": "me", "path": "me"}], **settings}
    (tmp_path / "c.json").write_text(json.dumps(config))
    r = run_cli("estimate", "--config", str(tmp_path / "c.json"), "--its", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("otdoctor: error: ") and named in r.stderr.splitlines()[0], r.stderr
    assert "internal error" not in r.stderr and r.stdout == ""


def test_cli_config_with_buckets(run_cli, tmp_path):
    me = tmp_path / "me"
    reg = tmp_path / "reg"
    old = tmp_path / "old"
    for d in (me, reg, old):
        d.mkdir()
    for i in range(6):
        _png(me / f"sq{i}.png", 1024, 1024)
    for i in range(5):
        _png(me / f"p{i}.png", 832, 1216)
        _png(me / f"p{i}-masklabel.png", 832, 1216)  # masks are not training images
    for i in range(3):
        _png(reg / f"l{i}.jpg", 1344, 768)
    _png(old / "x.png", 1024, 1024)
    config = {
        "__version": 11,
        "model_type": "STABLE_DIFFUSION_XL_10_BASE",
        "resolution": "1024",
        "batch_size": 4,
        "epochs": 10,
        "aspect_ratio_bucketing": True,
        "output_dtype": "BFLOAT_16",
        "sample_after_unit": "NEVER",
        "backup_after_unit": "NEVER",
        "save_every_unit": "NEVER",
        "concepts": [
            {"name": "me", "path": str(me)},
            {"name": "reg", "path": str(reg), "balancing": 1.0},
            {"name": "old", "path": str(old), "enabled": False},
            {"name": "val", "path": str(old), "type": "VALIDATION"},
        ],
    }
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    r = run_cli("estimate", "--config", str(cfg), "--its", "1", "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["steps"]["per_epoch"] == 2 and data["steps"]["total"] == 20
    assert data["steps"]["dropped_per_epoch"] == 6
    assert {c["name"]: c["left_out"] for c in data["steps"]["concepts"]} == {
        "me": None,
        "reg": None,
        "old": "disabled",
        "val": "validation concept",
    }
    r = run_cli("estimate", "--config", str(cfg), "--its", "1")
    assert "6 samples per epoch dropped" in r.stdout


def test_cli_from_log_guide_line(run_cli):
    r = run_cli(
        "estimate",
        "--from-log",
        "-",
        "--start",
        "2026-01-01T08:00:00+00:00",
        "--format",
        "json",
        input=GUIDE_LINE + "\n",
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["epoch"] == 3 and data["epochs"] == 200
    assert data["remaining_s"] == pytest.approx(197 * 205.79)
    assert data["final_save_s"] > 0
    finish = dt.datetime.fromisoformat(data["finish"])
    expected = dt.datetime(2026, 1, 1, 8, tzinfo=dt.timezone.utc) + dt.timedelta(
        seconds=197 * 205.79 + data["final_save_s"]
    )
    assert abs((finish - expected).total_seconds()) < 1
    r = run_cli("estimate", "--from-log", "-", input=GUIDE_LINE + "\n")
    assert "remaining 11 h 15 min 41 s" in r.stdout


def test_cli_from_log_real_tqdm_stream(run_cli, tmp_path):
    import io

    from tqdm import tqdm

    buf = io.StringIO()
    ep = tqdm(total=4, desc="epoch", file=buf, mininterval=0)
    ep.update(1)
    st = tqdm(total=10, desc="step", file=buf, mininterval=0)
    st.update(5)
    log = tmp_path / "train.log"
    log.write_text(buf.getvalue())
    r = run_cli("estimate", "--from-log", str(log), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert (data["epoch"], data["epochs"], data["step"], data["steps_in_epoch"]) == (1, 4, 5, 10)
    assert data["remaining_s"] is not None
    r = run_cli("estimate", "--from-log", "-", input="no bars here\n")
    assert r.returncode == 1 and "no OneTrainer progress bar" in r.stderr


def test_cli_uses_smoke_result_for_the_named_gpu(run_cli, base_env, monkeypatch):
    from otdoctor.smoke import results

    monkeypatch.setenv("OTDOCTOR_CACHE_DIR", base_env["OTDOCTOR_CACHE_DIR"])
    results.save(
        results.SmokeResult(
            "onetrainer",
            "sdxl",
            1024,
            1,
            "bf16",
            "NVIDIA GeForce RTX 4090",
            steps=20,
            its=0.9,
            its_low=0.8,
            its_high=1.0,
            load_s=42.0,
            caching_images_per_s=6.0,
        )
    )
    results.save(results.SmokeResult("synthetic", "sd15", 512, 1, "bf16", "NVIDIA GeForce RTX 4090", steps=20, its=3.0))
    r = run_cli("estimate", "--images", "90", "--epochs", "10", "--gpu", "RTX 4090", "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["its"] == 0.9 and data["its_source"].startswith(
        "MEASURED by the smoke onetrainer run on NVIDIA GeForce RTX 4090"
    )
    terms = {t["name"]: t for t in data["terms"]}
    assert terms["model load"]["seconds"] == 42.0 and terms["model load"]["source"] == "MEASURED by the smoke run"
    assert terms["training steps"]["low_s"] == pytest.approx(900 / 1.0)
    assert terms["training steps"]["high_s"] == pytest.approx(900 / 0.8)
    # Another GPU has no smoke result: the rough table, labelled so.
    r = run_cli("estimate", "--images", "90", "--epochs", "10", "--gpu", "RTX 3090", "--format", "json")
    assert "ROUGH" in json.loads(r.stdout)["its_source"]
    # --from-smoke with no result for the model is an error that says what to do.
    r = run_cli("estimate", "--images", "90", "--epochs", "10", "--model", "sd15", "--gpu", "A100", "--from-smoke")
    assert r.returncode == 1 and "otdoctor smoke" in r.stderr


def test_rate_spread_and_steady_rate():
    from otdoctor.smoke.meter import rate_spread, steady_rate

    # Ten steps of 0.5 s then ten of 1 s: the fastest fifth runs at 2 it/s, the slowest at 1 it/s.
    assert rate_spread([0.5] * 10 + [1.0] * 10) == (1.0, 2.0)
    # Bar arrivals (time, n): warm-up steps 0-2 are slow and left out; then 1 step per 0.25 s.
    points = [(0.0, 0), (3.0, 1), (5.0, 2), (6.0, 3)] + [(6.0 + 0.25 * i, 3 + i) for i in range(1, 21)]
    rate = steady_rate(points, warmup=3)
    assert rate.its == pytest.approx(4.0) and rate.steps == 20
    assert rate.its_low == pytest.approx(4.0) and rate.its_high == pytest.approx(4.0)


# Relative concept paths: one rule for check and estimate ------------------------------------------
def _relative_setup(root: Path) -> tuple[Path, Path]:
    """A OneTrainer-like checkout OT/ and, outside it, c/rel.json with `"path": "imgs"` and 4 images in c/imgs."""
    ot = root / "OT"
    (ot / "scripts").mkdir(parents=True)
    (ot / "scripts" / "train.py").write_text("")
    (ot / "start-ui.sh").write_text("")
    (root / "c" / "imgs").mkdir(parents=True)
    for i in range(4):
        _png(root / "c" / "imgs" / f"{i}.png", 64, 64)
    config = root / "c" / "rel.json"
    config.write_text(json.dumps({"epochs": 10, "resolution": "512", "concepts": [{"name": "c", "path": "imgs"}]}))
    return ot, config


def test_relative_concept_path_is_relative_to_the_checkout_in_check_and_estimate(run_cli, tmp_path):
    ot, config = _relative_setup(tmp_path)
    missing = str(ot / "imgs")
    r = run_cli("check", "--ot-dir", str(ot), "--config", str(config), "--only", "config.concepts")
    assert f"'c': {missing} does not exist" in r.stdout, r.stdout
    # the same file through estimate: the same folder, and 0 images is no finish time but one error line
    for args, cwd in ((["--ot-dir", str(ot)], tmp_path), ([], ot)):  # the checkout named, or found in the cwd
        r = run_cli("estimate", "--config", str(config), "--its", "1", *args, cwd=cwd)
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stderr.startswith(f"otdoctor: error: no images found in {missing}: the run would have 0 steps")
        assert r.stdout == "" and "total" not in r.stderr
    # images where OneTrainer looks: counted, and no note about an assumed folder
    (ot / "imgs").mkdir()
    for i in range(3):
        _png(ot / "imgs" / f"{i}.png", 64, 64)
    r = run_cli("estimate", "--config", str(config), "--its", "1", "--ot-dir", str(ot), "--format", "json")
    data = json.loads(r.stdout)
    assert data["steps"]["total"] == 30 and not any("relative" in n for n in data["notes"]), r.stdout


def test_relative_concept_path_without_a_checkout_says_which_folder_it_assumed(run_cli, tmp_path):
    _, config = _relative_setup(tmp_path)
    r = run_cli("estimate", "--config", str(config), "--its", "1")
    assert r.returncode == 0 and "40 steps" in r.stdout, r.stdout + r.stderr
    said = " ".join(r.stdout.split())
    assert "relative" in said and f"config's folder {config.parent}" in said and "--ot-dir" in said, r.stdout
    r = run_cli("check", "--config", str(config), "--only", "config.concepts", "-v")
    assert "'c' 4 images" in r.stdout and f"config's folder {config.parent}" in " ".join(r.stdout.split()), r.stdout


def test_config_inside_a_checkout_is_relative_to_that_checkout(run_cli, tmp_path):
    ot, config = _relative_setup(tmp_path)
    inside = ot / "training_presets" / "rel.json"
    inside.parent.mkdir()
    inside.write_text(config.read_text())
    r = run_cli("estimate", "--config", str(inside), "--its", "1")
    assert r.returncode == 2 and f"no images found in {ot / 'imgs'}" in r.stderr, r.stdout + r.stderr
