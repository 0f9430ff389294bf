"""The model against real torch on the CPU: a real tiny UNet's parameters, gradients, optimizer state
and saved activations after one real step (scripts/calibrate_vram.py --cpu), and the shipped counts
against a fresh count of the published architectures (scripts/count_parameters.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from otdoctor.data import load_table
from tests.support import REPO


def run(venv, *argv, timeout=600):
    r = subprocess.run([str(venv / "bin" / "python"), *argv], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.slow
def test_each_component_matches_a_real_step(torch_venv):
    results = json.loads(run(torch_venv, "scripts/calibrate_vram.py", "--cpu"))["results"]
    assert {r["variant"] for r in results} >= {"adamw", "adamw-fused", "adafactor", "adafactor-checkpointed"}
    for r in results:
        measured, predicted = r["measured"], r["predicted"]
        # Saved activations too: coefficients fitted on the meta device at other sizes vs real tensors.
        for component in ("weights", "gradients", "optimizer state", "activations"):
            assert predicted[component] == measured[component], (r["variant"], component)
    fused = next(r for r in results if r["variant"] == "adamw-fused")
    assert fused["measured"]["gradients"] < fused["measured"]["weights"] / 5  # freed as they land


@pytest.mark.slow
def test_shipped_counts_are_a_fresh_count(torch_venv):
    probe = subprocess.run([str(torch_venv / "bin" / "python"), "-c", "import transformers"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("transformers is not installed in the torch venv: the text encoders cannot be counted")
    fresh = run(torch_venv, "scripts/count_parameters.py")
    import tomllib

    assert tomllib.loads(fresh) == load_table("vram_counts.toml")
