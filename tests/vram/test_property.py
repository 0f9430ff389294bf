"""Any config JSON through the VRAM model gives a prediction or a one-line error, never a crash."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from otdoctor.errors import UserError
from otdoctor.vram.advice import advise
from otdoctor.vram.model import predict
from otdoctor.vram.settings import read_settings
from tests.support.calm import assert_calm, run_main

GIB = 1024**3
junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True), st.text(max_size=12))


def mostly(*valid):
    """A valid value of a key nine times in ten, anything else the tenth."""
    good = st.one_of(*(st.sampled_from(v) if isinstance(v, list) else v for v in valid))
    return st.integers(0, 9).flatmap(lambda n: junk if n == 0 else good)


DTYPES = ["BFLOAT_16", "FLOAT_32", "FLOAT_16", "NFLOAT_4", "FLOAT_8", "NONE"]
part = st.fixed_dictionaries(
    {},
    optional={
        "train": mostly(st.booleans()),
        "weight_dtype": mostly(DTYPES),
        "gradient_checkpointing": mostly(st.booleans()),
        "offload_fraction": mostly(st.floats(0, 1)),
        "activation_offloading": mostly(st.booleans()),
    },
)
optimizer = st.fixed_dictionaries(
    {},
    optional={
        "optimizer": mostly(["ADAFACTOR", "ADAMW", "ADAMW_8BIT", "CAME", "PRODIGY", "LION", "SGD", "MUON_ADV"]),
        "fused_back_pass": mostly(st.booleans()),
        "beta1": mostly(st.none(), st.floats(0, 1)),
        "slice_p": mostly(st.integers(1, 20)),
        "momentum": mostly(st.floats(0, 1)),
    },
)
configs = st.fixed_dictionaries(
    {"model_type": mostly(["STABLE_DIFFUSION_XL_10_BASE", "STABLE_DIFFUSION_15", "FLUX_DEV_1"])},
    optional={
        "training_method": mostly(["FINE_TUNE", "LORA", "EMBEDDING", "FINE_TUNE_VAE"]),
        "resolution": mostly(["512", "768", "1024", "768,1024", "1024x768", "64"], st.integers(8, 4096)),
        "batch_size": mostly(st.integers(1, 64)),
        "gradient_accumulation_steps": mostly(st.integers(1, 8)),
        "train_dtype": mostly(["BFLOAT_16", "FLOAT_16", "FLOAT_32"]),
        "ema": mostly(["OFF", "GPU", "CPU"]),
        "latent_caching": mostly(st.booleans()),
        "lora_rank": mostly(st.integers(1, 256)),
        "lora_weight_dtype": mostly(DTYPES[:-1]),
        "weight_dtype": mostly(DTYPES[:-1]),
        "gradient_checkpointing": mostly(["ON", "OFF", "CPU_OFFLOADED"], st.booleans()),
        "layer_offload_fraction": mostly(st.floats(0, 1)),
        "unet": st.one_of(part, junk),
        "text_encoder": part,
        "text_encoder_2": part,
        "vae": part,
        "optimizer": st.one_of(optimizer, junk),
    },
)


@pytest.mark.property
@given(raw=configs, free_gib=st.floats(0.5, 100))
def test_any_config_is_a_prediction_or_one_line_error(raw, free_gib):
    try:
        s = read_settings(raw)
    except UserError as exc:
        assert exc.message and "\n" not in exc.message and exc.exit_code == 2
        event("one-line error")
        return
    event("prediction")
    prediction = predict(s)
    assert prediction.peak_bytes > 0 and all(c.bytes >= 0 for c in prediction.components)
    advice = advise(raw, prediction, int(free_gib * GIB))
    if advice.steps:
        assert advice.steps[-1].peak_bytes < prediction.peak_bytes
    assert all(step.saves_bytes > 0 for step in advice.steps)


@pytest.mark.property
@settings(max_examples=30)
@given(raw=st.one_of(configs, st.lists(junk, max_size=2), junk))
def test_any_config_file_through_the_cli_is_calm(raw):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(raw))
        run = run_main(["vram", "--config", str(path), "--free-gb", "12", "--format", "json"])
    assert_calm(run)
    if run.code != 2:
        data = json.loads(run.out)
        assert data["peak_bytes"] == sum(c["bytes"] for c in data["components"])
        assert data["fits"] == (run.code == 0)
