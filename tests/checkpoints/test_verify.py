"""`otdoctor models verify|list` and the `models.checkpoints` check on real safetensors files, real
diffusers folders, real configs and the broken files users end up with (truncated downloads, HTML
login pages, git-lfs pointers, JSON errors, pickles)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.support.modelfiles import sha256_of, write_checkpoint, write_diffusers
from tests.support.models_helpers import CIVITAI_TOKEN, HF_TOKEN, assert_no_tokens_in_tree, catalog_toml, make_runner

XL_NAME = "RealVisXL_V4.0.safetensors"
SD15_NAME = "hyperRealism_30.safetensors"


@pytest.fixture
def models(tmp_path: Path, base_env: dict[str, str]) -> dict[str, Path]:
    """A models folder with good copies of both catalog models, and a user catalog that knows them."""
    d = tmp_path / "models"
    xl = write_checkpoint(d / "sdxl" / XL_NAME, "sdxl", pad_bytes=400_000, seed=5)
    sd = write_checkpoint(d / "sd15" / SD15_NAME, "sd15", pad_bytes=300_000, seed=6)
    entries = [
        {
            "name": "realvisxl-v4",
            "title": "RealVisXL V4.0",
            "architecture": "SDXL",
            "source": "huggingface",
            "repo": "SG161222/RealVisXL_V4.0",
            "filename": XL_NAME,
            "files": [{"name": XL_NAME, "size_bytes": xl.stat().st_size, "sha256": sha256_of(xl)}],
        },
        {
            "name": "hyper-realism-v3",
            "title": "Hyper Realism V3",
            "architecture": "SD 1.5",
            "source": "civitai",
            "civitai_version_id": 292213,
            "filename": SD15_NAME,
            "files": [
                {"name": SD15_NAME, "size_bytes": sd.stat().st_size, "sha256": sha256_of(sd), "label": "full"},
                {"name": SD15_NAME, "size_bytes_approx": 2_130_000_000, "sha256": "3c" * 32, "label": "pruned fp16"},
            ],
        },
    ]
    cfg = Path(base_env["OTDOCTOR_CONFIG_DIR"])
    cfg.mkdir(parents=True)
    (cfg / "models.toml").write_text(catalog_toml(entries))
    return {"dir": d, "xl": xl, "sd15": sd}


@pytest.fixture
def run(base_env, tmp_path):
    runner = make_runner(
        base_env, tmp_path, {"CIVITAI_TOKEN": CIVITAI_TOKEN, "HF_TOKEN": HF_TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    )
    yield runner
    assert_no_tokens_in_tree(tmp_path)


def test_good_models_verified_and_cached(run, models):
    proc = run("models", "verify", "--models-dir", str(models["dir"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("sha256 matches") == 2
    assert "2 checked: 2 good, 0 bad" in proc.stdout
    check = run("check", "--only", "models", "--models-dir", str(models["dir"]))
    assert check.returncode == 0 and "2 checkpoint(s) verified" in check.stdout


def test_cached_verify_does_not_hash_again(models, tmp_path):
    from otdoctor.checkpoints.catalog import load_catalog
    from otdoctor.checkpoints.hashing import VerifyCache
    from otdoctor.checkpoints.verify import Verifier

    env = {"OTDOCTOR_CONFIG_DIR": str(tmp_path / "otdoctor-config")}
    cache_file = tmp_path / "verify-cache.json"
    target = [(models["xl"], None, None, "")]
    first = Verifier(load_catalog(env), VerifyCache(cache_file)).verify(target)[0]
    again = Verifier(load_catalog(env), VerifyCache(cache_file)).verify(target)[0]
    assert first.state == again.state == "verified"
    assert first.hashed_now and not again.hashed_now  # the second answer came from the cache file


def test_overwritten_in_place_with_mtime_restored_is_verified_again(run, models):
    xl = models["xl"]
    assert run("models", "verify", str(xl)).returncode == 0
    # Damage the data in place but put size and mtime back: only ctime tells this file changed.
    st = xl.stat()
    with open(xl, "r+b") as fh:
        fh.seek(-10, os.SEEK_END)
        fh.write(b"\xff" * 10)
    os.utime(xl, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert xl.stat().st_mtime_ns == st.st_mtime_ns and xl.stat().st_size == st.st_size
    proc = run("models", "verify", str(xl))
    assert proc.returncode == 1 and "matches none of the known files" in proc.stdout


def test_truncated_download_named_with_missing_bytes(run, models):
    xl = models["xl"]
    data = xl.read_bytes()
    xl.write_bytes(data[:-12345])
    proc = run("models", "verify", str(xl))
    assert proc.returncode == 1
    assert "truncated: 12345 bytes" in proc.stdout
    check = run("check", "--only", "models", "--models-dir", str(models["dir"]))
    assert check.returncode == 1
    assert "truncated" in check.stdout and "otdoctor models download realvisxl-v4" in check.stdout


@pytest.mark.parametrize(
    "content, named",
    [
        (b"<!DOCTYPE html><html><head><title>Sign in</title></head></html>", "an HTML page"),
        (b'{"error":"Unauthorized","message":"API key required"}', "a JSON error"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:912c9dc7\nsize 6938040706\n", "a git-lfs pointer"),
    ],
)
def test_not_a_model_saved_under_model_name(run, models, content, named):
    models["sd15"].write_bytes(content)
    proc = run("models", "verify", str(models["sd15"]))
    assert proc.returncode == 1
    assert named in proc.stdout


def test_fifo_named_like_a_model_is_bad_not_a_hang(run_cli, tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    proc = run_cli("models", "verify", str(fifo), timeout=30)
    assert proc.returncode == 1
    assert "not a model: " in proc.stdout and "is not a regular file" in proc.stdout


@pytest.mark.parametrize("command", ["list", "verify"])
def test_mistyped_models_dir_is_named_not_no_checkpoints(run_cli, tmp_path, command):
    typo = tmp_path / "modles"
    proc = run_cli("models", command, "--models-dir", str(typo))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"otdoctor: error: --models-dir {typo} is not a folder"


def test_pickle_reported_never_unpickled(run, tmp_path, models):
    # A pickle that would create a file if anything unpickled it.
    marker = tmp_path / "unpickled"
    payload = b"\x80\x04\x95" + b"\x00" * 8 + b"cos\nsystem\n(V touch " + str(marker).encode() + b"\ntR."
    ckpt = models["dir"] / "old.ckpt"
    ckpt.write_bytes(payload)
    proc = run("models", "verify", str(ckpt))
    assert proc.returncode == 0
    assert "pickle" in proc.stdout and "never unpickles" in proc.stdout and ".safetensors" in proc.stdout
    assert not marker.exists()


@pytest.mark.parametrize(
    "kind, arch",
    [("sdxl", "SDXL"), ("sd15", "SD 1.5"), ("sd2", "SD 2.x"), ("lora", "LoRA"), ("embedding", "embedding")],
)
def test_architecture_detected(run, tmp_path, kind, arch):
    f = write_checkpoint(tmp_path / "x" / f"{kind}.safetensors", kind)
    proc = run("models", "verify", str(f), "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)[0]["architecture"] == arch


def test_wrong_architecture_under_catalog_name(run, models):
    write_checkpoint(models["xl"], "sd15", pad_bytes=1000)
    proc = run("models", "verify", str(models["xl"]))
    assert proc.returncode == 1
    assert "architecture SD 1.5" in proc.stdout and "RealVisXL V4.0 is SDXL" in proc.stdout


def _config(tmp_path: Path, base: str, model_type: str) -> Path:
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"__version": 11, "model_type": model_type, "base_model_name": base, "concepts": []}))
    return cfg


def test_config_model_type_mismatch_fails_check(run, tmp_path, models):
    cfg = _config(tmp_path, str(models["xl"]), "STABLE_DIFFUSION_15")
    proc = run("check", "--only", "models", "--config", str(cfg))
    assert proc.returncode == 1
    assert "STABLE_DIFFUSION_15 expects SD 1.5" in proc.stdout
    good = _config(tmp_path, str(models["xl"]), "STABLE_DIFFUSION_XL_10_BASE")
    assert run("check", "--only", "models", "--config", str(good), "--models-dir", str(models["dir"])).returncode == 0


def test_config_base_model_missing(run, tmp_path, models):
    cfg = _config(tmp_path, str(tmp_path / "nowhere" / XL_NAME), "STABLE_DIFFUSION_XL_10_BASE")
    proc = run("check", "--only", "models", "--config", str(cfg))
    assert proc.returncode == 1
    assert "base model" in proc.stdout and "was not found" in proc.stdout
    assert "otdoctor models download realvisxl-v4" in proc.stdout


def test_config_repo_id_found_in_hf_cache_as_diffusers(run, tmp_path, models):
    snap = tmp_path / "hf-home" / "hub" / "models--org--xl-model" / "snapshots" / ("a" * 40)
    write_diffusers(snap, "sdxl")
    cfg = _config(tmp_path, "org/xl-model", "STABLE_DIFFUSION_XL_10_BASE")
    proc = run("check", "--only", "models", "--config", str(cfg), "--models-dir", str(models["dir"]), "--verbose")
    assert proc.returncode == 0, proc.stdout
    assert "diffusers folder, 7 components" in proc.stdout


def test_diffusers_folder_incomplete(run, tmp_path):
    folder = write_diffusers(tmp_path / "pipe", "sdxl")
    assert run("models", "verify", str(folder)).returncode == 0
    shutil.rmtree(folder / "text_encoder_2")
    w = folder / "unet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    proc = run("models", "verify", str(folder))
    assert proc.returncode == 1
    assert "component text_encoder_2/" in proc.stdout and "is missing" in proc.stdout
    assert "unet/diffusion_pytorch_model.safetensors: truncated: 100 bytes" in proc.stdout


def test_list_shows_found_missing_and_download_command(run, models, base_env, tmp_path):
    os.remove(models["sd15"])
    proc = run("models", "list", "--models-dir", str(models["dir"]))
    assert proc.returncode == 0
    assert str(models["xl"]) in proc.stdout
    assert "not found" in proc.stdout and "otdoctor models download hyper-realism-v3" in proc.stdout
    check = run("check", "--only", "models", "--models-dir", str(models["dir"]))
    assert check.returncode == 0  # a missing catalog model is a warning
    assert "not found: Hyper Realism V3" in check.stdout and "otdoctor models download hyper-realism-v3" in check.stdout


def test_builtin_catalog_has_the_guide_models(run, tmp_path):
    proc = run("models", "list", "--json")
    data = {e["name"]: e for e in json.loads(proc.stdout)["catalog"]}
    assert data["realvisxl-v4"]["architecture"] == "SDXL" and "SG161222/RealVisXL_V4.0" in data["realvisxl-v4"]["where"]
    assert data["hyper-realism-v3"]["architecture"] == "SD 1.5" and "292213" in data["hyper-realism-v3"]["where"]


def test_broken_user_catalog_is_one_line(run, base_env):
    cfg = Path(base_env["OTDOCTOR_CONFIG_DIR"])
    cfg.mkdir(parents=True)
    (cfg / "models.toml").write_text("[[model]]\nname = 'x'\narchitecture = 'SDXXL'\nsource = 'civitai'\n")
    proc = run("models", "list")
    assert proc.returncode == 2 and "SDXXL" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "key",
    [
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",  # kohya
        "base_model.model.down_blocks.0.attentions.0.to_q.lora_A.weight",  # PEFT
        "unet.down_blocks.0.attentions.0.processor.to_q_lora.down.weight",  # old diffusers
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.hada_w1_a",
    ],  # LyCORIS LoHa
)
def test_lora_key_styles_detected(tmp_path, key):
    import numpy as np
    from safetensors.numpy import save_file

    from otdoctor.checkpoints.safetensors import LORA, detect_architecture, read_header

    f = tmp_path / "lora.safetensors"
    save_file({key: np.zeros((4, 4), dtype=np.float16)}, str(f))
    header = read_header(f)
    assert header.complete and detect_architecture(header.tensors) == LORA
