"""`otdoctor vram` as a user runs it: the verdict, the breakdown, the changes, the exit code."""

from __future__ import annotations

import json

from tests.support import NVML_DATA
from tests.support.calm import assert_calm, run_main

from .test_model import GUIDE, guide


def write(tmp_path, raw, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(raw))
    return str(path)


def test_guide_config_fits_a_12_gb_card(tmp_path):
    run = run_main(["vram", "--config", write(tmp_path, GUIDE), "--gpu", "RTX 3060"])
    assert_calm(run)
    assert run.code == 0 and run.out.startswith("Fits: predicted peak 8.9 GiB, 12.0 GiB an empty RTX 3060")
    assert "weights unet" in run.out and "activations unet" in run.out


def test_too_big_names_the_cheapest_changes_as_config_values(tmp_path):
    cfg = write(tmp_path, guide(optimizer__fused_back_pass=False, ema="GPU"))
    run = run_main(["vram", "--config", cfg, "--free-gb", "10"])
    assert run.code == 1 and run.out.startswith("Will not fit")
    assert "--config-value ema=CPU" in run.out and "--config-value optimizer.fused_back_pass=true" in run.out
    assert f"scripts/train.py --config-path {cfg} --config-value ema=CPU" in run.out
    data = json.loads(run_main(["vram", "--config", cfg, "--free-gb", "10", "--format", "json"]).out)
    assert data["free_bytes"] == 10 * 1024**3 and data["fits"] is False
    assert data["peak_bytes"] == sum(c["bytes"] for c in data["components"])
    assert {"name", "bytes", "why"} == set(data["components"][0])
    assert data["changes"][0]["config_values"] == ["ema=CPU"] and data["changes_fit"] is True
    assert data["command"].endswith("--config-value ema=CPU --config-value optimizer.fused_back_pass=true")


def test_free_vram_of_the_detected_gpu(tmp_path):
    env = {"OTDOCTOR_NVML_SNAPSHOT": str(NVML_DATA / "gtx1080-driver580.json")}
    run = run_main(["vram", "--config", write(tmp_path, GUIDE), "--format", "json"], env)
    data = json.loads(run.out)
    assert "GTX 1080" in data["free_source"] and data["free_bytes"] < 8 * 1024**3
    assert run.code == (0 if data["fits"] else 1)


def test_bad_input_is_one_line(tmp_path):
    for argv, text in [
        (["vram"], "needs a config"),
        (["vram", "--config", str(tmp_path / "missing.json")], "not found"),
        (["vram", "--config", write(tmp_path, {"model_type": "FLUX_DEV_1"}, "flux.json")], "no memory model"),
        (["vram", "--config", write(tmp_path, GUIDE), "--gpu", "Voodoo 2"], "unknown --gpu 'Voodoo 2'"),
        (["vram", "--config", write(tmp_path, GUIDE), "--free-gb", "-3"], "--free-gb must be a positive"),
    ]:
        run = run_main(argv)
        assert_calm(run)
        assert run.code == 2 and text in run.err and len(run.err.strip().splitlines()) <= 2, (argv, run.err)
    (tmp_path / "broken.json").write_text("{nope")
    run = run_main(["vram", "--config", str(tmp_path / "broken.json")])
    assert run.code == 2 and "line 1, column 2" in run.err
