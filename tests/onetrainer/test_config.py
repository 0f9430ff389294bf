"""Reading OneTrainer configs in their real formats: full exports, presets, the UI's #.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otdoctor.errors import UserError
from otdoctor.onetrainer.config import load_config
from tests.support.trainingdata import concept, full_config, write_json

# training_presets/SDXL/#sdxl 1.0.json as OneTrainer ships it (23df383): partial, no __version.
SDXL_PRESET = {
    "base_model_name": "stabilityai/stable-diffusion-xl-base-1.0",
    "model_type": "STABLE_DIFFUSION_XL_10_BASE",
    "output_model_destination": "models/model.safetensors",
    "output_model_format": "ORIGINAL_SINGLE_FILE",
    "resolution": "1024",
    "training_method": "FINE_TUNE",
    "vae": {"weight_dtype": "FLOAT_32"},
    "unet": {"weight_dtype": "BFLOAT_16"},
    "text_encoder": {"train": False, "weight_dtype": "BFLOAT_16"},
    "text_encoder_2": {"train": False, "weight_dtype": "BFLOAT_16"},
}


def test_full_export_with_nested_versions_reads_cleanly(tmp_path: Path) -> None:
    write_json(tmp_path / "training_concepts" / "concepts.json", [concept("me", "data/me", balancing=2.0)])
    cfg_path = write_json(
        tmp_path / "cfg.json", full_config(model_type="STABLE_DIFFUSION_XL_10_BASE", unet={"learning_rate": 1e-5})
    )
    cfg = load_config(cfg_path, tmp_path)
    assert cfg.version == 11 and not cfg.is_preset
    assert cfg.warnings == ()
    assert cfg.is_sdxl and cfg.training_method == "FINE_TUNE"
    assert cfg.part_learning_rate("unet") == 1e-5
    assert cfg.part_learning_rate("text_encoder") == 3e-6  # null: the global rate
    assert [c.name for c in cfg.concepts] == ["me"] and cfg.concepts[0].balancing == 2.0
    assert cfg.concepts_source == str(tmp_path / "training_concepts" / "concepts.json")
    assert cfg.resolve("data/me") == tmp_path / "data" / "me"


def test_preset_takes_onetrainer_defaults(tmp_path: Path) -> None:
    cfg = load_config(write_json(tmp_path / "#sdxl 1.0.json", SDXL_PRESET), tmp_path)
    assert cfg.is_preset and cfg.version is None
    assert cfg.get("output_dtype") == "FLOAT_32" and cfg.get("train_dtype") == "FLOAT_16"
    assert cfg.get("optimizer.fused_back_pass") is False
    assert cfg.flag("text_encoder.train") is False
    assert cfg.resolutions == (1024,)
    assert any("concept file" in w and "does not exist" in w for w in cfg.warnings)


def test_unknown_keys_and_versions_are_warnings(tmp_path: Path) -> None:
    raw = full_config(learning_rat=1e-5, unet={"learning_rat": 1e-5, "__version": 4})
    raw["__version"] = 12
    c = concept("me", "data/me")
    c["balance"] = 1
    c["text"]["promt_source"] = "sample"
    write_json(tmp_path / "training_concepts" / "concepts.json", [c])
    cfg = load_config(write_json(tmp_path / "cfg.json", raw), tmp_path)
    text = "\n".join(cfg.warnings)
    assert "unknown key(s) in the config: learning_rat" in text
    assert "unknown key(s) in unet: learning_rat" in text
    assert "__version 12" in text and "unet has __version 4" in text
    assert "balance" in text and "text.promt_source" in text


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "model_type": "STABLE_DIFFUSION_15",\n  "epochs": 100,,\n}\n')
    with pytest.raises(UserError) as exc:
        load_config(bad)
    assert "line 3, column 17" in exc.value.message


def test_inline_concepts(tmp_path: Path) -> None:
    raw = full_config(concepts=[concept("a", "x"), concept("b", "y", enabled=False)])
    cfg = load_config(write_json(tmp_path / "cfg.json", raw), tmp_path)
    assert cfg.concepts_source == "inline"
    assert [c.name for c in cfg.enabled_concepts] == ["a"]


def test_check_uses_last_used_ui_state_and_says_so(tmp_path: Path, run_cli) -> None:
    ot = tmp_path / "ot"
    write_json(ot / "training_presets" / "#.json", full_config())
    write_json(ot / "training_concepts" / "concepts.json", [])
    r = run_cli("check", "--ot-dir", str(ot), "--only", "config.file", "-f", "json")
    report = json.loads(r.stdout)
    (found,) = [c for c in report["checks"] if c["id"] == "config.file"]
    assert found["status"] == "ok"
    assert "training_presets/#.json (last-used UI state" in found["summary"]


def test_malformed_config_is_a_finding_not_an_abort(tmp_path: Path, run_cli) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"model_type": "STABLE_DIFFUSION_15",\n "epochs": 100\n "batch_size": 1}')
    r = run_cli("check", "--config", str(bad), "--only", "config", "--ot-dir", str(tmp_path))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "is not valid JSON: Expecting ',' delimiter at line 3, column 2" in r.stdout
    # The run went on: the other config checks are reported as skipped, on one line naming what they wait for.
    skipped = re.search(r"^- (\d+) checks skipped: (\d+) need config\.file \(--verbose lists them\)$", r.stdout, re.M)
    assert skipped and int(skipped[1]) == int(skipped[2]) > 1, r.stdout
    listed = run_cli("check", "--config", str(bad), "--only", "config", "--ot-dir", str(tmp_path), "--verbose")
    assert "config.model-type" in listed.stdout and "config.file" in listed.stdout, listed.stdout
