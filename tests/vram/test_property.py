"""Any config JSON through the VRAM model gives a prediction or a one-line error, never a crash."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otdoctor.errors import UserError
from otdoctor.vram.advice import advise
from otdoctor.vram.model import predict
from otdoctor.vram.settings import read_settings
from tests.support.calm import assert_calm, run_main

GIB = 1024**3
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True), st.text(max_size=12))
enum_like = st.sampled_from(
    [
        "STABLE_DIFFUSION_XL_10_BASE",
        "STABLE_DIFFUSION_15",
        "FLUX_DEV_1",
        "LORA",
        "FINE_TUNE",
        "EMBEDDING",
        "BFLOAT_16",
        "FLOAT_32",
        "NFLOAT_4",
        "NONE",
        "ADAFACTOR",
        "ADAMW",
        "CAME",
        "PRODIGY",
        "LION",
        "GPU",
        "CPU",
        "OFF",
        "ON",
        "CPU_OFFLOADED",
        "1024",
        "512,768",
        "1024x768",
        "0",
        "x",
    ]
)
values = st.one_of(scalars, enum_like)
part = st.dictionaries(
    st.sampled_from(["train", "weight_dtype", "gradient_checkpointing", "offload_fraction", "activation_offloading"]),
    values,
)
keys = st.sampled_from(
    [
        "model_type",
        "training_method",
        "resolution",
        "batch_size",
        "train_dtype",
        "ema",
        "latent_caching",
        "lora_rank",
        "lora_weight_dtype",
        "gradient_accumulation_steps",
        "weight_dtype",
        "gradient_checkpointing",
        "layer_offload_fraction",
        "train_device",
    ]
)
optimizer = st.dictionaries(
    st.sampled_from(["optimizer", "fused_back_pass", "beta1", "slice_p", "momentum", "factored"]), values
)
configs = st.fixed_dictionaries(
    {},
    optional={
        **{k: values for k in ["model_type", "training_method", "resolution", "batch_size", "train_dtype", "ema"]},
        "unet": st.one_of(part, values),
        "text_encoder": part,
        "text_encoder_2": part,
        "vae": part,
        "optimizer": st.one_of(optimizer, values),
    },
).flatmap(lambda base: st.dictionaries(keys, values, max_size=3).map(lambda extra: {**extra, **base}))


@pytest.mark.property
@given(raw=configs, free_gib=st.floats(0.5, 100))
def test_any_config_is_a_prediction_or_one_line_error(raw, free_gib):
    try:
        s = read_settings(raw)
    except UserError as exc:
        assert exc.message and "\n" not in exc.message and exc.exit_code == 2
        return
    prediction = predict(s)
    assert prediction.peak_bytes > 0 and all(c.bytes >= 0 for c in prediction.components)
    advice = advise(raw, prediction, int(free_gib * GIB))
    if advice.steps:
        assert advice.steps[-1].peak_bytes < prediction.peak_bytes
    assert all(step.saves_bytes > 0 for step in advice.steps)


@pytest.mark.property
@settings(max_examples=30)
@given(raw=st.one_of(configs, st.lists(values, max_size=2), values))
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
