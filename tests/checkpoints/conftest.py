"""Fixtures of the download tests: small real checkpoints, the real HTTP server serving them, and a
user catalog naming them, exactly as a user would add one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.modelfiles import sha256_of, write_checkpoint
from tests.support.models_helpers import (
    CIVITAI_TOKEN,
    HF_TOKEN,
    assert_no_tokens_in_tree,
    catalog_toml,
    make_runner,
)
from tests.support.modelserver import CivitaiVersion, ModelServer

VERSION_ID = 292213
CIVITAI_FILE = "hyperRealism_30.safetensors"
HF_REPO = "SG161222/RealVisXL_V4.0"
HF_FILE = "RealVisXL_V4.0.safetensors"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    return {
        "sd15": write_checkpoint(src / "sd15.safetensors", "sd15", pad_bytes=3_000_000, seed=1),
        "sdxl": write_checkpoint(src / "sdxl.safetensors", "sdxl", pad_bytes=1_500_000, seed=2),
        "sdxl_other": write_checkpoint(src / "other.safetensors", "sdxl", pad_bytes=1_500_000, seed=3),
    }


@pytest.fixture
def server(files: dict[str, Path]):
    with ModelServer() as srv:
        srv.state.token = CIVITAI_TOKEN
        srv.state.civitai[VERSION_ID] = CivitaiVersion(files["sd15"].read_bytes(), CIVITAI_FILE)
        srv.state.hf_files[(HF_REPO, HF_FILE)] = files["sdxl"].read_bytes()
        yield srv


def write_catalog(
    base_env: dict[str, str], files: dict[str, Path], civitai_size: int | None = None, civitai_sha: str | None = None
) -> None:
    sd15, sdxl = files["sd15"], files["sdxl"]
    entries = [
        {
            "name": "realvisxl-v4",
            "title": "RealVisXL V4.0",
            "architecture": "SDXL",
            "source": "huggingface",
            "repo": HF_REPO,
            "filename": HF_FILE,
            "files": [{"name": HF_FILE, "size_bytes": sdxl.stat().st_size, "sha256": sha256_of(sdxl)}],
        },
        {
            "name": "hyper-realism-v3",
            "title": "Hyper Realism V3",
            "architecture": "SD 1.5",
            "source": "civitai",
            "civitai_version_id": VERSION_ID,
            "filename": CIVITAI_FILE,
            "files": [
                {
                    "name": CIVITAI_FILE,
                    "size_bytes": civitai_size or sd15.stat().st_size,
                    "sha256": civitai_sha or sha256_of(sd15),
                }
            ],
        },
    ]
    cfg = Path(base_env["OTDOCTOR_CONFIG_DIR"])
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "models.toml").write_text(catalog_toml(entries))


@pytest.fixture
def run(base_env, tmp_path, server, files):
    write_catalog(base_env, files)
    env = {
        "HF_ENDPOINT": server.url,
        "OTDOCTOR_CIVITAI_URL": server.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "CIVITAI_TOKEN": CIVITAI_TOKEN,
        "HF_TOKEN": HF_TOKEN,
    }
    runner = make_runner(base_env, tmp_path, env)
    yield runner
    assert_no_tokens_in_tree(tmp_path)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per property-test module: Hypothesis examples may not use function-scoped fixtures."""
    return tmp_path_factory.mktemp("property")
