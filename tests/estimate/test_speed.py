"""Issue 13 item 5: a smoke speed measured at another resolution is scaled by the documented rule, or
refused with the command that measures it; with a GPU and no smoke result, that GPU's rough speed.

The smoke results in tests/estimate/data are real measurements, recorded on this project's CI-class
machine (2 CPUs, torch 2.13.0 CPU, diffusers 0.42.1) with
`otdoctor smoke --tiny --resolution R --steps 10 --warmup 2` (512 px: --steps 6 --warmup 1).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from otdoctor.estimate import arithmetic as est
from otdoctor.estimate.speed import scale_rate
from tests.estimate.strategies import isolated_env
from tests.support.calm import assert_calm, run_main

DATA = Path(__file__).parent / "data"
NVML = Path(__file__).parent.parent / "data" / "nvml"


def smoke(px: int) -> dict:
    return json.loads((DATA / f"smoke-tiny-cpu-{px}px.json").read_text())


def measured(px: int) -> est.Rate:
    s = smoke(px)
    return est.Rate(s["its"], s["its_low"], s["its_high"], f"smoke at {px} px")


@pytest.mark.parametrize("from_px,to_px", [(128, 256), (256, 128), (256, 512), (512, 256)])
def test_scaled_range_holds_the_speed_measured_at_the_other_size(from_px: int, to_px: int) -> None:
    scaled = scale_rate(measured(from_px), from_px, to_px)
    assert scaled is not None and scaled.low is not None and scaled.high is not None
    assert scaled.low <= smoke(to_px)["its"] <= scaled.high
    assert f"scaled from {from_px} to {to_px} px" in scaled.source


def test_the_figure_itself_is_close_where_convolutions_dominate() -> None:
    # 128 -> 256 px: 4x the latent pixels; measured 3.42x slower, the rule says 4x (the figure is
    # 15 % slow). At 512 px this toy UNet's attention over all 4096 latent pixels dominates (12x per
    # 4x pixels): the figure is then 3x too fast, and only the range's slow end (pixels^2) holds it.
    scaled = scale_rate(measured(128), 128, 256)
    assert scaled is not None
    assert scaled.its == pytest.approx(smoke(256)["its"], rel=0.2)


def test_beyond_twice_the_side_the_speed_is_not_scaled() -> None:
    assert scale_rate(measured(128), 128, 512) is None
    assert scale_rate(measured(512), 512, 128) is None


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    cache = tmp_path / "cache"
    (cache / "smoke").mkdir(parents=True)
    return isolated_env(tmp_path, OTDOCTOR_NVML_SNAPSHOT=str(NVML / "no-gpu.json"))


def with_smoke(env: dict[str, str], *pxs: int) -> None:
    for px in pxs:
        shutil.copy(DATA / f"smoke-tiny-cpu-{px}px.json", Path(env["OTDOCTOR_CACHE_DIR"]) / "smoke")


def estimate(env: dict[str, str], *args: str) -> dict:
    run = run_main(["estimate", "--images", "8", "--epochs", "2", "--model", "tiny", *args, "--format", "json"], env)
    assert_calm(run)
    assert run.code == 0, run.err
    return json.loads(run.out)


def test_estimate_scales_a_smoke_result_from_another_resolution(env: dict[str, str]) -> None:
    with_smoke(env, 128)
    data = estimate(env, "--resolution", "256")
    assert data["its"] == pytest.approx(smoke(128)["its"] / 4)
    assert "scaled from 128 to 256 px" in data["its_source"] and "smoke synthetic run on CPU" in data["its_source"]


def test_estimate_prefers_the_smoke_result_at_the_run_s_own_size(env: dict[str, str]) -> None:
    with_smoke(env, 128, 256)
    data = estimate(env, "--resolution", "256")
    assert data["its"] == pytest.approx(smoke(256)["its"]) and "scaled" not in data["its_source"]


def test_a_smoke_result_too_far_away_is_refused_with_the_command_to_measure(env: dict[str, str]) -> None:
    with_smoke(env, 128)
    data = estimate(env, "--resolution", "512")
    assert data["total_s"] is None
    command = "otdoctor smoke --synthetic --model tiny --resolution 512 --batch-size 1"
    assert any("at 128 px, more than 2x from 512 px" in n and command in n for n in data["notes"]), data["notes"]


def test_from_smoke_without_a_usable_result_names_the_command(env: dict[str, str]) -> None:
    with_smoke(env, 128)
    argv = ["estimate", "--images", "8", "--epochs", "2", "--model", "tiny", "--resolution", "512", "--from-smoke"]
    run = run_main(argv, env)
    assert_calm(run)
    assert run.code == 1
    assert "otdoctor smoke --synthetic --model tiny --resolution 512 --batch-size 1" in run.err


@pytest.mark.parametrize(
    "snapshot,named,its",
    [
        ("rtx4090-desktop.json", "RTX 4090", 0.83),
        ("h100-idle.json", "H100", 1.6),
        ("wsl-rtx3060.json", "RTX 3060", 0.2),
    ],
)
def test_a_detected_gpu_without_smoke_gives_a_rough_time(
    env: dict[str, str], snapshot: str, named: str, its: float
) -> None:
    env["OTDOCTOR_NVML_SNAPSHOT"] = str(NVML / snapshot)
    run = run_main(["estimate", "--images", "36", "--reg", "5000", "--epochs", "200", "--format", "json"], env)
    assert_calm(run)
    data = json.loads(run.out)
    assert data["its"] == pytest.approx(its) and data["steps"]["total"] == 14_400
    assert data["its_source"].startswith(f"ROUGH reference table, {named}, detected: ")
    assert data["total_s"] > 14_400 / its and data["finish"] is not None
    text = run_main(["estimate", "--images", "36", "--reg", "5000", "--epochs", "200"], env).out
    assert "ROUGH reference table" in text and "total: unknown" not in text


def test_no_gpu_and_no_smoke_says_how_to_get_a_speed(env: dict[str, str]) -> None:
    run = run_main(["estimate", "--images", "36", "--reg", "5000", "--epochs", "200", "--format", "json"], env)
    assert_calm(run)
    data = json.loads(run.out)
    assert data["total_s"] is None and any("no it/s known" in n for n in data["notes"])


def test_a_rough_speed_is_scaled_to_the_run_s_resolution(env: dict[str, str]) -> None:
    env["OTDOCTOR_NVML_SNAPSHOT"] = str(NVML / "rtx4090-desktop.json")
    run = run_main(["estimate", "--images", "36", "--epochs", "10", "--resolution", "768", "--format", "json"], env)
    data = json.loads(run.out)
    assert data["its"] == pytest.approx(0.83 * (1024 / 768) ** 2)
    assert "scaled from 1024 to 768 px" in data["its_source"]


def test_fixed_size_buckets_are_reported_as_that_size(env: dict[str, str]) -> None:
    # A fixed WxH resolution was reported as bucket 0x0 in JSON.
    data = estimate(env, "--resolution", "832x1216", "--its", "1")
    assert data["steps"]["buckets"] == [{"height": 1216, "width": 832, "samples": 8}]
