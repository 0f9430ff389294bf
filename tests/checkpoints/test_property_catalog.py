"""Generated user catalogs (issue 12): any `models.toml` loads or is a one-line usage error (exit 2)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otdoctor.checkpoints.catalog import load_catalog
from otdoctor.errors import UserError
from tests.support.calm import TIME_LIMIT_S, assert_calm, run_main
from tests.support.models_helpers import catalog_toml

# The user's catalog -------------------------------------------------------------------------------
scalars = st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.floats(allow_nan=False))
catalog_values = st.one_of(scalars, st.lists(scalars, max_size=3))
MODEL_KEYS = [
    "name",
    "title",
    "architecture",
    "source",
    "repo",
    "filename",
    "civitai_version_id",
    "aliases",
    "revision",
]
model_fields = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["mine", "my model", "realvisxl-v4", ""]), catalog_values),
        "architecture": st.one_of(st.sampled_from(["SDXL", "SD 1.5", "LoRA", "SDXXL"]), catalog_values),
        "source": st.one_of(st.sampled_from(["huggingface", "civitai", "ftp"]), catalog_values),
        "repo": st.one_of(st.just("org/repo"), catalog_values),
        "civitai_version_id": st.one_of(st.integers(-3, 10**6), catalog_values),
        "filename": st.one_of(st.just("m.safetensors"), catalog_values),
        "aliases": catalog_values,
        "title": catalog_values,
        "revision": catalog_values,
        "files": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(st.just("m.safetensors"), scalars),
                    "sha256": st.one_of(st.just("ab" * 32), scalars),
                    "size_bytes": st.one_of(st.integers(-5, 10**12), scalars),
                    "size_bytes_approx": scalars,
                    "label": scalars,
                },
            ),
            max_size=2,
        ),
    },
)
catalog_texts = st.one_of(
    st.lists(model_fields, max_size=3).map(catalog_toml),
    st.text(max_size=60),
    st.sampled_from(
        [
            "model = 5",
            "model = [1, 2]",
            "[model]\nname = 'x'",
            "a = " + "[" * 3000 + "]" * 3000,
            "[[model]]\nname = 'x'\ncivitai_version_id = " + "9" * 5000,
        ]
    ),
)


@pytest.mark.property
@given(text=catalog_texts)
def test_any_user_catalog_loads_or_is_one_line_usage_error(scratch: Path, text: str) -> None:
    config = scratch / "catalog"
    config.mkdir(exist_ok=True)
    (config / "models.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    started = time.monotonic()
    try:
        entries = load_catalog({"OTDOCTOR_CONFIG_DIR": str(config)})
    except UserError as exc:
        assert exc.exit_code == 2 and exc.message and "\n" not in exc.message.strip()
        return
    finally:
        assert time.monotonic() - started < TIME_LIMIT_S
    for e in entries:
        assert isinstance(e.name, str) and isinstance(e.filename, str) and e.download_command
        assert all(isinstance(f.size_bytes, (int, type(None))) for f in e.files)


@pytest.mark.property
@settings(max_examples=30)
@given(text=catalog_texts)
def test_models_list_with_any_user_catalog_is_calm(scratch: Path, text: str) -> None:
    config = scratch / "cli-catalog"
    config.mkdir(exist_ok=True)
    (config / "models.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
    env = {"OTDOCTOR_CONFIG_DIR": str(config), "OTDOCTOR_CACHE_DIR": str(scratch / "cli-cache-2")}
    run = run_main(["models", "list", "--json"], {**env, "HOME": str(scratch)})
    assert_calm(run)


def test_a_fifo_as_the_user_catalog_is_an_error_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "models.toml")
    with pytest.raises(UserError, match="not a regular file"):
        load_catalog({"OTDOCTOR_CONFIG_DIR": str(tmp_path)})
