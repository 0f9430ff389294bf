"""Generated safetensors files against the reference implementation (issue 12).

Each example starts from a valid layout and breaks at most one thing (a value, an offset, a dtype,
the data length, the header length, a character of the JSON). The oracle is `safetensors.safe_open`:
a file the library refuses is never "good" in otdoctor's verdict, and a file it reads is never
"bad" (otdoctor's rules are the format's, no looser, no stricter).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otdoctor.checkpoints.header_rules import DTYPE_BITS
from otdoctor.checkpoints.verify import Verifier
from tests.support.calm import assert_calm, run_main
from tests.support.modelfiles import library_accepts
from tests.support.models_helpers import json_values

TENSOR_NAMES = ["a", "b", "c", "lora_unet_x.lora_down.weight", "m.input_blocks.1.attn2.to_k.weight", "é"]
SPLICES = ["\\ud800", "[", "{", "}", '"', ",", "0", "-", "NaN", "1e5", ":", " ", "\x00", "\\"]
MUTATIONS = ["none", "value", "offsets", "dtype", "data_len", "header_len", "splice", "extra", "metadata"]


@st.composite
def layouts(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A valid header (tensors tiling the data region) and the data region's length."""
    names = draw(st.lists(st.sampled_from(TENSOR_NAMES), max_size=4, unique=True))
    header: dict[str, Any] = {}
    offset = 0
    for name in names:
        dtype = draw(st.sampled_from(sorted(DTYPE_BITS)))
        shape = draw(st.lists(st.integers(0, 5), max_size=3))
        if DTYPE_BITS[dtype] % 8:
            shape.append(8)  # sub-byte dtypes: a whole number of bytes
        size = math.prod(shape) * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2))
    return header, offset


def _mutate(draw: st.DrawFn, header: dict[str, Any], data_len: int, how: str) -> tuple[str, int, int]:
    """(header text, data length, header-length delta) with one thing broken the way `how` says."""
    tensors = [k for k in header if k != "__metadata__"]
    target = header[draw(st.sampled_from(tensors))] if tensors else None
    delta = 0
    if how == "value" and target is not None:
        target[draw(st.sampled_from(["dtype", "shape", "data_offsets"]))] = draw(json_values)
    elif how == "offsets" and target is not None:
        target["data_offsets"] = [draw(st.integers(-1, data_len + 3)), draw(st.integers(-1, data_len + 3))]
    elif how == "dtype" and target is not None:
        target["dtype"] = draw(st.sampled_from([*DTYPE_BITS, "Q99", "f16", "", "U4", "C128"]))
    elif how == "extra" and target is not None:
        target[draw(st.text(max_size=4))] = draw(json_values)
    elif how == "metadata":
        header["__metadata__"] = draw(json_values)
    elif how == "data_len":
        data_len = max(0, data_len + draw(st.integers(-3, 3)))
    elif how == "header_len":
        delta = draw(st.integers(-3, 3))
    text = json.dumps(header) + draw(st.sampled_from(["", " ", "\n", "  "]))
    if how == "splice":
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 2))
        text = text[:at] + draw(st.sampled_from(SPLICES)) + text[at + cut :]
    return text, data_len, delta


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    header, data_len = draw(layouts())
    text, data_len, delta = _mutate(draw, header, data_len, draw(st.sampled_from(MUTATIONS)))
    raw = text.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", max(0, len(raw) + delta)) + raw + bytes(data_len)


@pytest.mark.property
@given(blob=safetensors_files())
def test_verdict_agrees_with_the_reference_implementation(scratch: Path, blob: bytes) -> None:
    path = scratch / "model.safetensors"
    path.write_bytes(blob)
    verdict = Verifier((), None, do_hash=False).verify([(path, None, None, "")])[0]
    accepted = library_accepts(path)
    assert verdict.state != "bad" or not accepted, f"the library reads it, otdoctor says {verdict.problems}"
    assert verdict.state == "bad" or accepted, f"the library refuses it, otdoctor says {verdict.state}"
    assert all("\n" not in p for p in verdict.problems)


@pytest.mark.property
@settings(max_examples=40)
@given(blob=safetensors_files())
def test_models_verify_on_generated_files_is_calm(scratch: Path, blob: bytes) -> None:
    path = scratch / "cli.safetensors"
    path.write_bytes(blob)
    env = {"OTDOCTOR_CACHE_DIR": str(scratch / "cache"), "OTDOCTOR_CONFIG_DIR": str(scratch / "config")}
    run = run_main(["models", "verify", str(path), "--json"], env)
    assert_calm(run)
    (verdict,) = json.loads(run.out)
    assert run.code == (1 if verdict["state"] == "bad" else 0)
