"""Generated diffusers folders (issue 12): any `*.safetensors.index.json` or `model_index.json` is a
verdict with findings, never an exception, never over the time bound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otdoctor.checkpoints.verify import Verifier
from tests.support.modelfiles import write_diffusers
from tests.support.models_helpers import json_values, timed_verify

SHARDS = ["diffusion_pytorch_model.safetensors", "missing.safetensors", "../x", "/etc/hostname", "", ".", "a\x00b"]
shard_names = st.one_of(st.sampled_from(SHARDS), st.text(max_size=8), json_values)
index_texts = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(st.text(max_size=6), shard_names, max_size=3).map(lambda m: json.dumps({"weight_map": m})),
    json_values.map(lambda v: json.dumps({"weight_map": v})),
    st.text(max_size=30),
    st.integers(1, 5000).map(lambda n: "[" * n),
)
component_specs = st.one_of(st.just(["diffusers", "UNet2DConditionModel"]), json_values)
model_indexes = st.dictionaries(
    st.one_of(st.sampled_from(["unet", "vae", "_class_name", "..", "/etc", "a/b"]), st.text(max_size=5)),
    st.one_of(component_specs, st.sampled_from(["StableDiffusionPipeline", "StableDiffusionXLPipeline"])),
    max_size=4,
)


# Diffusers index files ----------------------------------------------------------------------------
@pytest.mark.property
@given(index=index_texts, model_index=st.one_of(st.none(), model_indexes, json_values))
def test_any_index_file_is_a_finding(scratch: Path, index: str, model_index: Any) -> None:
    folder = scratch / "pipe"
    if not folder.exists():
        write_diffusers(folder, "sd15")
        (folder / "model_index.json").rename(scratch / "model_index.good.json")
    good = (scratch / "model_index.good.json").read_text()
    (folder / "model_index.json").write_text(good if model_index is None else json.dumps(model_index))
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(index)
    verdict = timed_verify(Verifier((), None, do_hash=False), folder)
    assert verdict.kind in ("diffusers", "not-a-model")
    if model_index is None:  # the good model_index.json: the index file alone decides
        data = _loads(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        named = list(weight_map.values()) if isinstance(weight_map, dict) and weight_map else [None]
        good = all(v == "diffusion_pytorch_model.safetensors" for v in named)  # the one shard that exists
        assert (verdict.state == "bad") != good, verdict.problems


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
