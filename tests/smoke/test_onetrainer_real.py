"""OneTrainer mode against recorded output of the real OneTrainer (23df383, tiny SD 1.5-layout model,
CPU, scripts/e2e_onetrainer.py): its bars, its sampling passes, backups and saves, and their cost.

The fixture holds each chunk of train.py's stdout+stderr as it arrived (`[seconds, text]`), so the
timings below are the real run's. Its schedule: 4 epochs of 6 steps, sampling every 2 epochs (at
epoch 0 and 2), a backup after 3 epochs, the final save after the last.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otdoctor.estimate.progress_bars import BarStream, BarUpdate
from otdoctor.smoke.meter import Meter
from otdoctor.smoke.onetrainer_phases import Event, gaps, overheads
from tests.smoke.test_smoke import onetrainer, tqdm_venv, user_config  # noqa: F401 - the stand-in checkout
from tests.support import TESTS

DATA = TESTS / "data" / "onetrainer"
REAL = DATA / "sd15-samples-backups.jsonl"
END_S = 38.28  # the run's wall time: the process ended here


def _chunks(path: Path) -> list[tuple[float, str]]:
    return [tuple(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def _events(path: Path) -> list[Event]:
    stream, events = BarStream(), []
    for t, text in _chunks(path):
        events += [(t, ev) for ev in stream.feed(text, t)]
    return events + [(END_S, ev) for ev in stream.close(END_S)]


def _step_times(events: list[Event]) -> list[float]:
    """When each step was counted: a step bar's n going up."""
    times, last = [], None
    for t, ev in events:
        if isinstance(ev, BarUpdate) and ev.desc == "step":
            if last is not None and ev.n > last:
                times.append(t)
            last = ev.n
    return times


def test_the_real_output_has_the_shape_otdoctor_expects():
    events = _events(REAL)
    bars = {ev.desc for _, ev in events if isinstance(ev, BarUpdate)}
    assert {"epoch", "caching", "step", "sampling", "Writing model shards"} <= bars
    lines = [ev for _, ev in events if isinstance(ev, str)]
    assert any(line.startswith("Clearing cache directory") for line in lines)
    assert any("Creating Backup" in line for line in lines)
    assert any(line.startswith("Saving ") for line in lines)
    losses = [ev.postfix.get("loss") for _, ev in events if isinstance(ev, BarUpdate) and ev.postfix]
    assert losses and all(float(x) > 0 for x in losses if x)
    assert len(_step_times(events)) == 4 * 6  # every step of the 4 epochs counted


def test_meter_reads_load_caching_and_speed_from_real_bars():
    meter = Meter(0.0)
    for _, ev in _events(REAL):
        if isinstance(ev, BarUpdate):
            meter.add(ev)
    # The first bar (epoch 0/4) came 12.7 s in: imports and loading the tiny model.
    assert meter.load_s == pytest.approx(12.7, abs=0.05)
    # 6 images cached in 3.1 s between the caching bar's first and last draw.
    assert meter.caching_images_per_s() == pytest.approx(6 / (16.35 - 13.20), rel=0.02)
    rate = meter.step_rate(1)
    assert rate is not None and 2.0 < rate.its < 6.0


def test_sampling_costs_far_more_than_its_bar():
    events = _events(REAL)
    bar = [t for t, ev in events if isinstance(ev, BarUpdate) and ev.desc == "sampling"]
    spans, _ = gaps(events)
    sampled = [g for g in spans if "sample" in g.tags]
    assert len(sampled) == 1  # the pass at epoch 0 sits in the warm-up gap, left out
    found = overheads(events, END_S)
    # The second pass's bar is drawn for 0.15 s; the step after it comes 2.9 s after the one before.
    assert max(bar) - 26.02 < 0.2
    assert sampled[0].seconds == pytest.approx(27.82 - 24.24, abs=0.01)
    assert found.sample_s == pytest.approx(sampled[0].seconds - found.step_s - found.epoch_s, abs=1e-6)
    assert 2.0 < found.sample_s < 3.5


def test_backup_epoch_and_final_save_from_the_real_schedule():
    found = overheads(_events(REAL), END_S)
    assert found.step_s == pytest.approx(0.22, abs=0.03)  # steady steps of the tiny model
    assert found.epoch_s == pytest.approx(23.16 - 22.20 - found.step_s, abs=0.02)
    assert found.backups == 1 and found.backup_s == pytest.approx(
        33.76 - 29.02 - found.step_s - found.epoch_s, abs=0.02
    )
    # From the last step (35.09) to the process's end: the final `Saving` and the exit.
    assert found.final_s == pytest.approx(END_S - 35.09, abs=0.02)
    assert found.samples == 1 and found.saves == 0


def test_cut_output_gives_no_overheads_rather_than_wrong_ones():
    head = [e for e in _events(REAL) if e[0] < 17.5]  # stopped before the first step
    assert overheads(head, None).step_s is None


# The CLI over the real output: the stand-in train.py replays the recording -----------------------


def test_smoke_reports_real_overheads_end_to_end(run_cli, onetrainer, user_config, tmp_path):  # noqa: F811
    r = run_cli(
        "smoke",
        "--ot-dir",
        str(onetrainer),
        "--config",
        str(user_config),
        "--steps",
        "20",
        "--warmup",
        "2",
        "--set",
        "epochs=4",
        "--set",
        "train_device=cpu",
        "--format",
        "json",
        env={"FAKE_OT_REPLAY": str(REAL), "FAKE_OT_REPLAY_SCALE": "0.5"},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    data = json.loads(r.stdout)
    found = overheads(_events(REAL), END_S)
    assert data["ok"] and data["gpu"] == "CPU"
    # Replayed at half speed: every figure is half the real one (within the machine's scheduling).
    assert data["sample_s"] == pytest.approx(found.sample_s / 2, abs=0.25)
    assert data["backup_s"] == pytest.approx(found.backup_s / 2, abs=0.25)
    assert data["epoch_s"] == pytest.approx(found.epoch_s / 2, abs=0.2)
    assert data["its"] == pytest.approx(2 / found.step_s, rel=0.25)
    assert data["peak_memory_bytes"] and "RSS" in data["peak_memory_kind"]


# What the real train.py needs from the smoke's temporary config --------------------------------


def _prepared(tmp_path: Path, sets: list[str], raw: dict) -> tuple[dict, list[str], int]:
    from otdoctor.smoke.onetrainer_mode import prepare_onetrainer
    from otdoctor.smoke.run import SmokeOptions

    folder = tmp_path / "run"
    folder.mkdir()
    opts = SmokeOptions(steps=20, warmup=3, overrides=sets)
    run = prepare_onetrainer(tmp_path / "ot", Path("python"), folder, opts, raw, None, None)
    config = json.loads((folder / "config.json").read_text())
    values = [v for v in run.argv if "=" in v]
    return config, values, len(list((folder / "dataset").glob("*.png")))


def test_a_checkout_without_sample_definitions_gets_an_empty_list(tmp_path):
    """OneTrainer opens training_samples/samples.json at start even with sampling off
    (TrainConfig.to_pack_dict); a checkout where the UI never ran has none."""
    (tmp_path / "ot").mkdir()
    raw = {"__version": 11, "model_type": "STABLE_DIFFUSION_15", "resolution": "64"}
    config, _, _ = _prepared(tmp_path, [], dict(raw))
    samples = Path(config["sample_definition_file_name"])
    assert samples.is_file() and json.loads(samples.read_text()) == []
    (tmp_path / "ot" / "training_samples").mkdir()
    (tmp_path / "ot" / "training_samples" / "samples.json").write_text("[]")
    (tmp_path / "run").rename(tmp_path / "run-1")
    config, _, _ = _prepared(tmp_path, [], dict(raw))
    assert "sample_definition_file_name" not in config  # the checkout's own file is used


def test_whole_run_mode_sizes_the_dataset_to_the_measured_steps(tmp_path):
    (tmp_path / "ot").mkdir()
    raw = {"__version": 11, "model_type": "STABLE_DIFFUSION_15", "resolution": "64"}
    _, values, images = _prepared(tmp_path, ["epochs=4"], dict(raw))
    assert images == 6  # ceil(23 / 4): about warmup + steps steps over the 4 epochs
    assert "epochs=4" in values  # the user's --set comes last and wins over the smoke's one epoch


def test_real_sdxl_output_four_epochs():
    """The tiny SDXL-layout model, 4 epochs of 6 steps, no sampling or backups: an epoch boundary
    and the final save are its only overheads."""
    path = DATA / "sdxl-4-epochs.jsonl"
    stream, events = BarStream(), []
    for t, text in _chunks(path):
        events += [(t, ev) for ev in stream.feed(text, t)]
    found = overheads(events, 41.95)
    assert len(_step_times(events)) == 24
    assert found.samples == found.backups == found.saves == 0
    assert found.step_s == pytest.approx(0.57, abs=0.05) and found.epoch_s == pytest.approx(1.17, abs=0.05)
    assert found.final_s == pytest.approx(7.55, abs=0.05)
    assert [ev for _, ev in events if isinstance(ev, str) and ev.startswith("Saving ")]
