"""The safetensors format's rules, diffusers index files, the verify cache and the causes a user can
act on (issues 12 and 13): each bad file is "bad" with its reason, never "good", never a crash."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from otdoctor.checkpoints.hashing import CACHE_FILE, CACHE_VERSION, file_key
from otdoctor.checkpoints.header_rules import DTYPE_BITS
from tests.support.calm import assert_calm, run_main
from tests.support.factory import make_onetrainer
from tests.support.modelfiles import library_accepts, sha256_of, write_checkpoint, write_diffusers, write_raw
from tests.support.models_helpers import CIVITAI_TOKEN, HF_TOKEN, assert_no_tokens, catalog_toml

XL_NAME = "RealVisXL_V4.0.safetensors"
SD15_NAME = "hyperRealism_30.safetensors"


@pytest.fixture
def env(base_env: dict[str, str]) -> dict[str, str]:
    return {**base_env, "CIVITAI_TOKEN": CIVITAI_TOKEN, "HF_TOKEN": HF_TOKEN}


def verify(env: dict[str, str], *args: str):
    run = run_main(["models", "verify", *args], env)
    assert_calm(run)
    assert_no_tokens(run.out, run.err)
    return run


U8_4 = {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}


@pytest.mark.parametrize(
    "header, data, reason",
    [
        (json.dumps({"a": {**U8_4, "dtype": "Q99"}}).encode(), b"\0" * 4, "unknown dtype 'Q99'"),
        (json.dumps({"a": U8_4, "b": U8_4}).encode(), b"\0" * 4, "overlap tensor"),
        (json.dumps({"a": {**U8_4, "data_offsets": [100, 64]}}).encode(), b"\0" * 100, "end before they begin"),
        (json.dumps({"a": {**U8_4, "data_offsets": 5}}).encode(), b"\0" * 4, "data_offsets 5 is not [begin, end]"),
        (json.dumps({"a": {**U8_4, "shape": ["8", "x"]}}).encode(), b"\0" * 4, "shape entry '8'"),
        (b'{"a":' + b"[" * 100_000 + b"}", b"", "nests deeper than 64 levels"),
        (json.dumps({"a": {**U8_4, "dtype": "F16"}}).encode(), b"\0" * 4, "hold 4 bytes; shape [4] of F16 is 8"),
        (
            json.dumps({"a": {**U8_4, "data_offsets": [2, 6]}}).encode(),
            b"\0" * 6,
            "leave bytes 0..2 of the data unused",
        ),
        (b'{"a":{"dtype":"U8","shape":[1' + b"0" * 5000 + b'],"data_offsets":[0,4]}}', b"\0" * 4, "5001 digits"),
        (json.dumps({"__metadata__": {"a": 1}}).encode(), b"", "__metadata__ is"),
    ],
)
def test_headers_that_break_the_format_are_bad_with_the_reason(env, tmp_path, header, data, reason):
    f = write_raw(tmp_path / "m.safetensors", header, data)
    assert not library_accepts(f)  # the reference implementation refuses each of them too
    run = verify(env, str(f), "--json")
    assert run.code == 1
    (verdict,) = json.loads(run.out)
    assert verdict["state"] == "bad"
    assert any(reason in p for p in verdict["problems"]), verdict["problems"]


def test_the_dtype_table_is_what_the_installed_library_accepts(tmp_path):
    # Every dtype otdoctor knows is one safetensors reads at the size the table gives; a name it
    # does not know is refused by both.
    for dtype, bits in DTYPE_BITS.items():
        n = 8  # elements: a whole number of bytes for every bit width
        f = write_raw(
            tmp_path / f"{dtype}.safetensors",
            json.dumps({"t": {"dtype": dtype, "shape": [n], "data_offsets": [0, n * bits // 8]}}).encode(),
            b"\0" * (n * bits // 8),
        )
        assert library_accepts(f), dtype
    unknown = write_raw(tmp_path / "q.safetensors", json.dumps({"t": {**U8_4, "dtype": "Q99"}}).encode(), b"\0" * 4)
    assert not library_accepts(unknown)


def test_diffusers_index_files_that_are_not_a_weight_map_are_findings(env, tmp_path):
    folder = write_diffusers(tmp_path / "pipe", "sd15")
    index = folder / "unet" / "diffusion_pytorch_model.safetensors.index.json"
    cases = {
        '{"weight_map":{"a":["x"]}}': "weight_map names ['x'] as a shard",
        '{"weight_map":null}': "weight_map is None",
        "[1, 2]": "weight_map is None",
        '{"weight_map":{"a":"../../etc/passwd"}}': "not a file name in unet/",
        '{"weight_map":{"a":"shard-1.safetensors"}}': "unet/shard-1.safetensors (listed in",
        "[" * 100_000: "is not readable JSON",
    }
    for text, reason in cases.items():
        index.write_text(text)
        run = verify(env, str(folder))
        assert run.code == 1 and reason in run.out, (text[:40], run.out)


def test_corrupt_verify_cache_entry_is_discarded_and_recomputed(env, tmp_path):
    model = write_checkpoint(tmp_path / "models" / "mine.safetensors", "sdxl", pad_bytes=10_000)
    cfg = Path(env["OTDOCTOR_CONFIG_DIR"])
    cfg.mkdir(parents=True)
    entry = {"name": "xl", "architecture": "SDXL", "source": "huggingface", "repo": "o/r", "filename": model.name}
    entry["files"] = [{"name": model.name, "size_bytes": model.stat().st_size, "sha256": sha256_of(model)}]
    (cfg / "models.toml").write_text(catalog_toml([entry]))
    cache = Path(env["OTDOCTOR_CACHE_DIR"]) / CACHE_FILE
    cache.parent.mkdir(parents=True)
    key = file_key(model.stat())
    for corrupt in (
        {"kind": "safetensors", "missing_bytes": 0, "tensors": 4, "architecture": "SDXL", "sha256": 5},
        {"kind": "safetensors"},  # no missing_bytes: a truncated file would look complete
        {"kind": "safetensors", "missing_bytes": "0", "tensors": 4, "architecture": "SDXL"},
        [1, 2],
    ):
        cache.write_text(json.dumps({"version": CACHE_VERSION, "files": {key: corrupt}}))
        run = verify(env, str(model))
        assert run.code == 0 and "sha256 matches" in run.out, (corrupt, run.out)
        stored = json.loads(cache.read_text())["files"][key]
        assert stored["sha256"] == sha256_of(model)  # recomputed and stored right
    cache.write_text('{"version": 2, "files": ' + "[" * 100_000)
    assert verify(env, str(model)).code == 0


def test_html_page_from_civitai_names_the_token_and_how_to_set_it(env, tmp_path):
    page = b"<!DOCTYPE html><html><head><title>Sign in | Civitai</title></head><body>Log in</body></html>"
    f = tmp_path / "models" / "someModel_v1.safetensors"
    f.parent.mkdir()
    f.write_bytes(page)
    run = verify(env, str(f))
    assert run.code == 1
    assert "Civitai requires an API token for this download" in run.out
    assert "https://civitai.com/user/account" in run.out and "CIVITAI_TOKEN" in run.out
    assert "`token` query parameter" in run.out  # for a URL pasted into a browser or wget, as the guide does


def test_html_page_for_a_catalog_civitai_model_gives_the_download_command(env, tmp_path):
    cfg = Path(env["OTDOCTOR_CONFIG_DIR"])
    cfg.mkdir(parents=True)
    entry = {"name": "hyper-realism-v3", "architecture": "SD 1.5", "source": "civitai"}
    (cfg / "models.toml").write_text(catalog_toml([{**entry, "civitai_version_id": 292213, "filename": SD15_NAME}]))
    models = tmp_path / "models"
    models.mkdir()
    (models / SD15_NAME).write_bytes(b"<html><body>Please log in</body></html>")  # says nothing of its site
    run = run_main(["check", "--only", "models", "--models-dir", str(models)], env)
    assert_calm(run)
    assert run.code == 1
    assert "Civitai requires an API token" in run.out and "otdoctor models download hyper-realism-v3" in run.out
    plan = run.out[run.out.index("fix: ") :].splitlines()
    mv, note, download = (line.strip() for line in plan[1:4])
    assert mv.startswith("mv ") and download.startswith("otdoctor models download hyper-realism-v3")
    assert note.startswith("# before the download: create an API key at https://civitai.com/user/account")
    assert_no_tokens(run.out, run.err)


def test_html_page_from_a_gated_hugging_face_repo(env, tmp_path):
    snap = tmp_path / "hf" / "models--org--gated" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    f = snap / "model.safetensors"
    f.write_bytes(b"<!doctype html><html><head><title>Hugging Face - Sign in</title></head></html>")
    run = verify(env, str(f))
    assert run.code == 1
    assert "gated on Hugging Face" in run.out and "Accept the licence" in run.out
    assert "hf auth login" in run.out and "HF_TOKEN" in run.out


def test_implicit_last_used_config_base_model_is_verified(env, tmp_path):
    ot = make_onetrainer(tmp_path / "OneTrainer", git_init=False)
    base = write_checkpoint(ot / "models" / "base.safetensors", "sdxl", pad_bytes=20_000)
    base.write_bytes(base.read_bytes()[:-777])  # an interrupted copy
    presets = ot / "training_presets"
    presets.mkdir(exist_ok=True)
    last_used = {"__version": 11, "model_type": "STABLE_DIFFUSION_XL_10_BASE", "base_model_name": str(base)}
    (presets / "#.json").write_text(json.dumps({**last_used, "concepts": []}))
    implicit = run_main(["check", "--only", "models", "--ot-dir", str(ot)], env)
    assert_calm(implicit)
    assert implicit.code == 1 and "truncated: 777 bytes" in implicit.out
    explicit = run_main(["check", "--only", "models", "--ot-dir", str(ot), "--config", str(presets / "#.json")], env)
    assert explicit.code == 1 and "truncated: 777 bytes" in explicit.out


def test_overwrite_keeps_the_cache_honest_without_rereading_unchanged_files(env, tmp_path):
    f = write_checkpoint(tmp_path / "m" / "x.safetensors", "sd15")
    assert verify(env, str(f)).code == 0
    before = f.stat()
    with open(f, "r+b") as fh:  # rewrite the header length in place: now the header is too long
        fh.write(struct.pack("<Q", before.st_size))
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    run = verify(env, str(f))
    assert run.code == 1 and "truncated" in run.out
