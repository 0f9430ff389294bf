"""A user's catalog entry, as `otdoctor models list` reads it: what is refused, and in which words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.calm import Run, assert_calm, run_main
from tests.support.models_helpers import catalog_toml

CIVITAI = {"name": "evil", "architecture": "SD 1.5", "source": "civitai", "civitai_version_id": 292213}


def models_list(tmp_path: Path, entry: dict[str, Any]) -> Run:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "models.toml").write_text(catalog_toml([entry]))
    env = {"OTDOCTOR_CONFIG_DIR": str(cfg), "OTDOCTOR_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    return run_main(["models", "list"], env)


@pytest.mark.parametrize(
    "filename",
    ["../../../tmp/pwned.safetensors", "/tmp/pwned.safetensors", "sub/x.safetensors", "..", "a\tb.safetensors"],
)
def test_a_catalog_filename_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, filename: str) -> None:
    run = models_list(tmp_path, {**CIVITAI, "filename": filename})
    assert_calm(run)
    assert run.code == 2
    assert "model 'evil': filename" in run.err and "is not a plain file name" in run.err
    assert len(run.err.strip().splitlines()) == 1 and "evil" not in run.out


def test_a_known_file_name_with_a_folder_is_refused(tmp_path: Path) -> None:
    entry = {**CIVITAI, "filename": "ok.safetensors", "files": [{"name": "../ok.safetensors"}]}
    run = models_list(tmp_path, entry)
    assert run.code == 2
    assert "model 'evil': [[model.files]] name '../ok.safetensors' is not a plain file name" in run.err


def test_a_plain_file_name_is_listed(tmp_path: Path) -> None:
    run = models_list(tmp_path, {**CIVITAI, "filename": "hyperRealism_30.safetensors"})
    assert run.code == 0 and "evil" in run.out


def test_a_civitai_version_id_that_is_not_a_number_is_named_as_an_id(tmp_path: Path) -> None:
    run = models_list(tmp_path, {**CIVITAI, "civitai_version_id": "abc", "filename": "x.safetensors"})
    assert run.code == 2
    assert "civitai_version_id must be a whole number (a Civitai model version id), not 'abc'" in run.err
    assert "of bytes" not in run.err


def test_a_size_that_is_not_a_number_is_named_in_bytes(tmp_path: Path) -> None:
    entry = {**CIVITAI, "filename": "x.safetensors", "files": [{"name": "x.safetensors", "size_bytes": -5}]}
    run = models_list(tmp_path, entry)
    assert run.code == 2 and "size_bytes must be a whole number of bytes, not '-5'" in run.err
