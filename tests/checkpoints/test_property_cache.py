"""Generated verify-cache files (issue 12): an entry is trusted only when well formed; anything else is
discarded, the facts computed again, and what is written back is well formed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otdoctor.checkpoints.hashing import CACHE_FILE, CACHE_VERSION, VerifyCache, file_key, valid_facts
from otdoctor.checkpoints.verify import Verifier
from tests.support.calm import assert_calm, run_main
from tests.support.modelfiles import sha256_of, write_checkpoint
from tests.support.models_helpers import json_values, timed_verify

# The verify cache ---------------------------------------------------------------------------------
fact_keys = st.sampled_from(["kind", "missing_bytes", "tensors", "architecture", "sha256", "error", "invalid", "x"])
fact_values = st.one_of(
    st.sampled_from(["safetensors", "pickle", "not-a-model", "SDXL", "a" * 64, 0, -5, True]), json_values
)
entries = st.one_of(st.dictionaries(fact_keys, fact_values, max_size=6), json_values)


@pytest.mark.property
@given(entry=entries, version=st.sampled_from([CACHE_VERSION, CACHE_VERSION, 1, "2", None]), wrap=st.integers(0, 3))
def test_any_cache_entry_is_trusted_only_when_well_formed(scratch: Path, entry: Any, version: Any, wrap: int) -> None:
    model = scratch / "cached" / "model.safetensors"
    if not model.exists():
        write_checkpoint(model, "sdxl")
        model.write_bytes(model.read_bytes()[:-100])  # truncated: a lying cache entry would hide it
    cache_file = scratch / "cached" / CACHE_FILE
    payload: Any = {"version": version, "files": {file_key(model.stat()): entry}}
    if wrap == 1:
        payload = {"version": version, "files": [entry]}
    elif wrap == 2:
        payload = entry
    cache_file.write_text(json.dumps(payload))
    fresh = timed_verify(Verifier((), None, do_hash=False), model)
    cached = timed_verify(Verifier((), VerifyCache(cache_file), do_hash=False), model)
    trusted = wrap == 0 and version == CACHE_VERSION and valid_facts(entry)
    assert trusted or (cached.state, cached.problems) == (fresh.state, fresh.problems)
    assert fresh.state == "bad" and "truncated: 100 bytes" in fresh.problems[0]
    stored = json.loads(cache_file.read_text())["files"]
    assert all(valid_facts(v) for v in stored.values())  # what was written back is well formed


@pytest.mark.property
@settings(max_examples=30)
@given(entry=entries)
def test_models_verify_with_any_cache_file_is_calm(scratch: Path, entry: Any) -> None:
    home = scratch / "cli-cache"
    model = home / "m.safetensors"
    if not model.exists():
        write_checkpoint(model, "sd15")
    (home / "cache").mkdir(exist_ok=True)
    payload = {"version": CACHE_VERSION, "files": {file_key(model.stat()): entry}}
    (home / "cache" / CACHE_FILE).write_text(json.dumps(payload))
    env = {"OTDOCTOR_CACHE_DIR": str(home / "cache"), "OTDOCTOR_CONFIG_DIR": str(home / "config")}
    run = run_main(["models", "verify", str(model)], env)
    assert_calm(run)


def test_the_cache_file_round_trips_a_real_verify(tmp_path: Path) -> None:
    model = write_checkpoint(tmp_path / "m.safetensors", "sd15")
    cache = VerifyCache(tmp_path / CACHE_FILE)
    Verifier((), cache, do_hash=False).verify([(model, None, None, "")])
    stored = json.loads((tmp_path / CACHE_FILE).read_text())
    assert stored["version"] == CACHE_VERSION and list(stored["files"]) == [file_key(model.stat())]
    assert sha256_of(model)  # the file is intact after the verify
