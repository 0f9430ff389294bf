"""Hypothesis strategies for OneTrainer training configs as a hostile or careless user writes them.

Every key the config checks and `otdoctor estimate` read gets any JSON value (and the values that
once crashed them: "inf", "SECOND", "~nosuchuser/x", a lone surrogate, huge numbers); concepts get
the same at their keys; the whole file may also be any JSON at all, or text that is not JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from otdoctor.data import load_table
from tests.support.trainingdata import concept, full_config

_TABLE = load_table("onetrainer_config.toml")

# Values that broke a reader once (issue 12), and the usual suspects for enums and paths.
NASTY = [
    "inf",
    "-inf",
    "nan",
    "1e400",
    "SECOND",
    "~nosuchuser/x",
    "~",
    "1",
    "0",
    "-1",
    "",
    " ",
    "x",
    "1024x",
    "x1024",
    "64x64",
    "832x1216",
    "768,1024",
    ",",
    "\ud800",
    "a\udcff",
    "a\x00b",
    "9" * 5000,
    "a" * 300,
    "/".join(["a" * 200] * 30),
    "EPOCH",
    "STEP",
    "ALWAYS",
    "NEVER",
    "MINUTE",
    "FOO",
    "REPEATS",
    "SAMPLES",
    "VALIDATION",
    "LORA",
    "EMBEDDING",
    "FINE_TUNE",
    "STABLE_DIFFUSION_XL_10_BASE",
    "STABLE_DIFFUSION_15",
    "INT_8",
    "FLOAT_32",
    "NFLOAT_4",
    "/",
    "..",
    "/dev/zero",
    "models/nothere.safetensors",
    "data/me",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.sampled_from([10**11 - 1, 10**7, 10**7 + 1, 2**63, -(2**63), 10**300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(NASTY),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)

TOP_KEYS = sorted({*_TABLE["values"], *_TABLE["defaults"], "concepts", "concept_file_name"} - {"__version"})
TOP_KEYS = [k for k in TOP_KEYS if "." not in k] + ["__version", "samples", "optimizer"]
PART_KEYS = sorted({*_TABLE["part_values"], "train", "weight_dtype", "learning_rate", "__version"})
CONCEPT_KEYS = sorted({k.split(".")[0] for k in _TABLE["concept_values"]} | set(_TABLE["concept_keys"]))
SUB_KEYS = {"text": ["prompt_source", "prompt_path"], "image": ["enable_resolution_override", "resolution_override"]}


@st.composite
def concepts(draw: st.DrawFn, folder: str) -> list[Any]:
    """Concepts as the UI writes them, with any value at any key (and sometimes not a dict at all)."""
    out: list[Any] = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.integers(0, 9)) == 0:
            out.append(draw(json_values))
            continue
        c = concept("me", draw(st.sampled_from([folder, folder, "~nosuchuser/x", "data/none"]) | json_values))
        for key in draw(st.lists(st.sampled_from(CONCEPT_KEYS), max_size=3)):
            c[key] = draw(json_values)
        for sub, keys in SUB_KEYS.items():
            if isinstance(c.get(sub), dict) and draw(st.booleans()):
                c[sub][draw(st.sampled_from(keys))] = draw(json_values | st.just(True))
        out.append(c)
    return out


@st.composite
def config_texts(draw: st.DrawFn, folder: str) -> str:
    """The text of a config file: mostly a real export with hostile values, sometimes anything."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return json.dumps(draw(json_values))
    if kind == 1:
        return draw(st.sampled_from(["[" * 100_000, "{" * 5, '{"epochs": ' + "9" * 5000 + "}", "", "\x00", "nul"]))
    cfg = full_config(resolution="512", concepts=draw(concepts(folder)) if draw(st.booleans()) else None)
    for key in draw(st.lists(st.sampled_from(TOP_KEYS), max_size=4)):
        cfg[key] = draw(json_values)
    part = draw(st.sampled_from(list(_TABLE["model_parts"])))
    if draw(st.booleans()) and isinstance(cfg.get(part), dict):
        cfg[part][draw(st.sampled_from(PART_KEYS))] = draw(json_values)
    return json.dumps(cfg)


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """Variables for an in-process `otdoctor` run that keep it off the user's home, caches and colours."""
    return {
        "HOME": str(home),
        "OTDOCTOR_CACHE_DIR": str(home / "cache"),
        "OTDOCTOR_CONFIG_DIR": str(home / "config"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        **extra,
    }


def concept_file(root: Path, items: list[Any]) -> Path:
    path = root / "training_concepts" / "concepts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items))
    return path
