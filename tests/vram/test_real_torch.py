"""The model against real torch on the CPU: a real tiny UNet's parameters, gradients, optimizer state
and saved activations after a real step, and the peak of the next step as PyTorch's MemTracker sees
it (scripts/calibrate_vram.py --cpu); the shipped counts against a fresh count of the published
architectures (scripts/count_parameters.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from otdoctor.data import load_table
from tests.support import REPO


@pytest.fixture(scope="module")
def ot_torch(torch_venv):
    """The session's torch venv plus transformers: OneTrainer's Adafactor is transformers' one, and
    the text encoders are built from it."""
    python = str(torch_venv / "bin" / "python")
    if subprocess.run([python, "-c", "import transformers"], capture_output=True).returncode != 0:
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "transformers"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return torch_venv


def run(venv, *argv, timeout=600):
    r = subprocess.run([str(venv / "bin" / "python"), *argv], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.slow
def test_each_component_matches_a_real_step(ot_torch):
    results = json.loads(run(ot_torch, "scripts/calibrate_vram.py", "--cpu"))["results"]
    assert {r["variant"] for r in results} >= {"adamw", "adamw-fused", "adafactor", "adafactor-checkpointed"}
    for r in results:
        measured, predicted = r["measured"], r["predicted"]
        # Saved activations too: coefficients fitted on the meta device at other sizes vs real tensors.
        for component in ("weights", "gradients", "optimizer state", "activations"):
            assert predicted[component] == measured[component], (r["variant"], component)
        # The steady-state peak of a second step, by PyTorch's MemTracker: the goal is 10 %.
        assert abs(predicted["peak"] - measured["peak"]) <= 0.10 * measured["peak"], r
    fused = next(r for r in results if r["variant"] == "adamw-fused")
    assert fused["measured"]["gradients"] < fused["measured"]["weights"] / 5  # freed as they land


@pytest.mark.slow
def test_the_gpu_calibration_path_runs_on_the_cpu(ot_torch):
    """--dry-run: the guide's config and its six variants through the GPU calibration's own code
    (OneTrainer-style checkpointing of the transformer blocks, EMA, fused back pass) on the tiny UNet;
    the steady-state peak by MemTracker within the issue's 10 %."""
    out = json.loads(run(ot_torch, "scripts/calibrate_vram.py", "--dry-run"))
    assert out["mode"] == "dry-run" and len(out["results"]) == 7
    for r in out["results"]:
        measured, predicted = r["max_memory_allocated"], r["predicted_allocated"]
        assert abs(predicted - measured) <= 0.10 * measured, r
        assert r["predicted_total"] > predicted and r["nvidia_smi_used"] is None


def _fresh_counts(venv, text_encoders: bool):
    fresh = tomllib.loads(run(venv, "scripts/count_parameters.py", *([] if text_encoders else ["--no-text-encoders"])))
    shipped = load_table("vram_counts.toml")
    for family, parts in fresh.items():
        for part, stats in parts.items():
            assert stats == shipped[family][part], (family, part)
    return {(f, p) for f, parts in fresh.items() for p in parts}


@pytest.mark.slow
def test_shipped_unet_and_vae_counts_are_a_fresh_count(ot_torch):
    assert _fresh_counts(ot_torch, False) == {("sd15", "unet"), ("sd15", "vae"), ("sdxl", "unet"), ("sdxl", "vae")}


@pytest.mark.slow
def test_shipped_text_encoder_counts_are_a_fresh_count(ot_torch):
    assert ("sdxl", "text_encoder_2") in _fresh_counts(ot_torch, True)
