"""`otdoctor estimate --from-smoke` with what a real OneTrainer smoke measured (the recorded real
train.py output of tests/data/onetrainer/, tiny models on a CPU): each sampling pass, backup, save and
epoch boundary costs what the smoke saw, and the output says which figures were measured.

The recorded SD 1.5 run (4 epochs of 6 steps, sampling every 2 epochs, a backup after 3, the final
save) measured: steady step 0.2356 s, one sampling pass +2.626 s, one backup +3.790 s, one epoch
boundary +0.719 s, the final save and exit 3.189 s, model load 12.71 s, caching 1.91 images/s.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from otdoctor.estimate.progress_bars import BarStream
from otdoctor.smoke import results
from tests.support import TESTS

DATA = TESTS / "data" / "onetrainer"
# The recordings' wall times: each process ended here.
RECORDED = {"sd15-samples-backups": ("sd15", 38.28), "sdxl-4-epochs": ("sdxl", 41.95)}
SCHEDULE = {  # OneTrainer's own: what the recorded SD 1.5 run used, over 40 epochs
    "sample_after": 2,
    "sample_after_unit": "EPOCH",
    "backup_after": 3,
    "backup_after_unit": "EPOCH",
    "save_every": 4,
    "save_every_unit": "EPOCH",
}


def _save_recorded_smoke(name: str) -> results.SmokeResult:
    """The smoke result of a recorded real run, as OneTrainer mode reads it (warmup 3, the e2e runs')."""
    model, end = RECORDED[name]
    stream, events = BarStream(), []
    for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        t, text = json.loads(line)[:2]
        events += [(t, ev) for ev in stream.feed(text, t)]
    events += [(end, ev) for ev in stream.close(end)]
    settings = {"model": model, "resolution": 64, "batch_size": 1, "dtype": "fp32", "gpu": "CPU"}
    result = results.from_whole_run(events, end, settings, warmup=3)
    results.save(result)
    return result


def _config(tmp_path: Path, model_type: str, schedule: dict) -> Path:
    """A 40-epoch config over 6 images of 64 px, as the e2e long runs have."""
    data = tmp_path / "dataset"
    data.mkdir()
    for i in range(6):
        Image.new("RGB", (64, 64)).save(data / f"{i}.png")
    concepts = tmp_path / "concepts.json"
    concepts.write_text(json.dumps([{"__version": 2, "name": "e2e", "path": str(data), "enabled": True}]))
    config = {
        "__version": 11,
        "model_type": model_type,
        "training_method": "FINE_TUNE",
        "resolution": "64",
        "epochs": 40,
        "batch_size": 1,
        "concept_file_name": str(concepts),
        "latent_caching": True,
        "output_dtype": "FLOAT_32",
        "backup_before_save": False,
        **schedule,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _estimate(run_cli, config: Path, *fmt: str):
    r = run_cli("estimate", "--config", str(config), "--from-smoke", "--start", "2026-12-01T09:00:00+00:00", *fmt)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def cache(base_env, monkeypatch):
    monkeypatch.setenv("OTDOCTOR_CACHE_DIR", base_env["OTDOCTOR_CACHE_DIR"])


def test_every_overhead_costs_what_the_real_smoke_measured(run_cli, cache, tmp_path):
    _save_recorded_smoke("sd15-samples-backups")
    config = _config(tmp_path, "STABLE_DIFFUSION_15", SCHEDULE)
    data = json.loads(_estimate(run_cli, config, "--format", "json").stdout)
    terms = {t["name"]: t for t in data["terms"]}
    # OneTrainer's schedule over 40 epochs, as the real 40-epoch run fired it (docs/onetrainer-e2e.md).
    names = ("sampling", "backups", "saves", "final save and exit", "epoch boundaries")
    counts = {name: terms[name]["count"] for name in names}
    assert counts == {"sampling": 20, "backups": 13, "saves": 9, "final save and exit": 1, "epoch boundaries": 39}
    assert terms["sampling"]["each_s"] == pytest.approx(2.626, abs=0.01)  # not the rough 20 steps at 2.5x + 2 s
    assert terms["backups"]["each_s"] == pytest.approx(3.790, abs=0.01)  # not 1.1 GB at SATA speed
    # The recording saved only at its end: each save costs what the final one did, exit included.
    assert terms["saves"]["each_s"] == terms["final save and exit"]["each_s"] == pytest.approx(3.189, abs=0.01)
    assert terms["epoch boundaries"]["each_s"] == pytest.approx(0.719, abs=0.01)
    assert all(terms[n]["source"].startswith("MEASURED") for n in (*names, "model load"))
    assert data["its"] == pytest.approx(1 / 0.2356, rel=0.001)
    # 12.7 s load + 3.1 s caching + 240 x 0.2356 + 39 x 0.719 + 20 x 2.626 + 10 x 3.189 + 13 x 3.790
    assert data["total_s"] == pytest.approx(234.1, abs=0.5)
    text = _estimate(run_cli, config).stdout
    assert "total 3 min 54 s" in text and "finishes about 09:03" in text
    assert "MEASURED by the smoke run" in text and "ASSUMED" not in text


def test_what_the_smoke_did_not_measure_keeps_the_rough_rule_and_says_so(run_cli, cache, tmp_path):
    """The SDXL recording had no sampling and no backup: a run with both estimates them the rough way,
    labelled ASSUMED, while its epoch boundaries and saves cost what the smoke measured."""
    smoke = _save_recorded_smoke("sdxl-4-epochs")
    assert smoke.sample_s is None and smoke.backup_s is None
    config = _config(tmp_path, "STABLE_DIFFUSION_XL_10_BASE", SCHEDULE)
    data = json.loads(_estimate(run_cli, config, "--format", "json").stdout)
    terms = {t["name"]: t for t in data["terms"]}
    rough = 20 / (data["its"] * 2.5) + 2  # gpu_speed.toml: 20 steps at 2.5x the training rate + 2 s
    assert terms["sampling"]["each_s"] == pytest.approx(rough)
    assert terms["sampling"]["source"].startswith("ASSUMED")
    assert terms["backups"]["source"].startswith("ASSUMED")
    assert terms["final save and exit"]["each_s"] == pytest.approx(7.545, abs=0.01)
    assert terms["saves"]["source"].startswith("MEASURED")
    assert terms["epoch boundaries"]["each_s"] == pytest.approx(1.153, abs=0.01)
    text = _estimate(run_cli, config).stdout
    assert "ASSUMED, the smoke run did not measure it: rough: 20 steps" in text


def test_options_win_over_the_smoke(run_cli, cache, tmp_path):
    _save_recorded_smoke("sd15-samples-backups")
    config = _config(tmp_path, "STABLE_DIFFUSION_15", SCHEDULE)
    r = _estimate(run_cli, config, "--sample-s", "10", "--write-mbps", "100", "--format", "json")
    terms = {t["name"]: t for t in json.loads(r.stdout)["terms"]}
    assert terms["sampling"]["each_s"] == 10 and terms["sampling"]["source"] == "--sample-s"
    assert terms["backups"]["source"] == terms["saves"]["source"] == "--write-mbps"
    assert terms["epoch boundaries"]["each_s"] == pytest.approx(0.719, abs=0.01)


def test_measured_costs_in_the_arithmetic_and_the_old_rules_without_them():
    from otdoctor.estimate import arithmetic as est

    plan = est.plan_steps([est.ConceptPlan("me", 6)], epochs=40, batch_size=1)
    every_2 = est.Schedule(2, "EPOCH")
    rough = est.TimeInputs(plan=plan, rate=est.Rate(4.0), sampling=every_2, save_bytes=10**9, final_save=True)
    old = {t.name: t for t in est.estimate_time(rough).terms}
    assert "epoch boundaries" not in old  # nothing measured: the rough rules, no epoch term
    assert old["saves"].each_s == pytest.approx(10**9 / rough.write_bytes_per_s)
    measured = dataclasses.replace(rough, sample_s=2.5, save_s=3.0, epoch_s=0.5, epoch_source="MEASURED")
    time = est.estimate_time(measured)
    new = {t.name: t for t in time.terms}
    assert new["epoch boundaries"].count == 39 and new["epoch boundaries"].seconds == pytest.approx(19.5)
    assert new["sampling"].seconds == pytest.approx(20 * 2.5) and new["saves"].seconds == pytest.approx(3.0)
    assert time.total_s == pytest.approx(240 / 4 + 19.5 + 20 * 2.5 + 3.0)  # no load or caching given
    # A schedule by the clock sees the loop lengthened by the epoch boundaries too.
    by_minute = dataclasses.replace(measured, sampling=est.Schedule(1, "MINUTE"), epoch_s=2.0)  # 60 s + 78 s
    no_epochs = dataclasses.replace(by_minute, epoch_s=None)
    count = {t.name: t.count for t in est.estimate_time(by_minute).terms}
    assert count["sampling"] > {t.name: t.count for t in est.estimate_time(no_epochs).terms}["sampling"]


def test_the_final_save_with_the_exit_apart_from_the_saves_before_it():
    """A smoke that saved every epoch measured a save (1.2 s for the tiny SD 1.5) apart from the
    final one with the process's exit (2.4 s): each is counted at its own cost."""
    from otdoctor.estimate import arithmetic as est

    plan = est.plan_steps([est.ConceptPlan("me", 6)], epochs=40, batch_size=1)
    inputs = est.TimeInputs(plan=plan, rate=est.Rate(8.0), saves=est.Schedule(4, "EPOCH"), save_s=1.2, final_s=2.4)
    terms = {t.name: t for t in est.estimate_time(inputs).terms}
    assert (terms["saves"].count, terms["saves"].seconds) == (9, pytest.approx(9 * 1.2))
    assert (terms["final save and exit"].count, terms["final save and exit"].seconds) == (1, 2.4)
    no_final = {t.name: t for t in est.estimate_time(dataclasses.replace(inputs, final_save=False)).terms}
    assert "final save and exit" not in no_final and no_final["saves"].count == 9
