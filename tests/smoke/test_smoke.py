"""`otdoctor smoke`: real training in a real torch venv, and OneTrainer mode against a checkout whose
scripts/train.py behaves like OneTrainer's (same arguments, real tqdm bars, writes a workspace)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.support import TESTS
from tests.support.factory import make_onetrainer, make_venv, otdoctor_exe, pip_install, pyenv_python

FAKE_TRAIN = TESTS / "support" / "fake_onetrainer_train.py"


# Synthetic mode: real torch, real diffusers, real optimizer steps ------------------------------
def tiny_smoke(run_cli, torch_venv: Path, *args: str):
    """`otdoctor smoke --tiny` with the session's real torch venv."""
    return run_cli("smoke", "--tiny", "--python", str(torch_venv / "bin" / "python"), *args, timeout=600)


@pytest.mark.slow
def test_synthetic_tiny_really_trains(run_cli, torch_venv, tmp_path):
    r = tiny_smoke(run_cli, torch_venv, "--steps", "4", "--warmup", "1", "--format", "json")
    assert r.returncode == 0, r.stderr + r.stdout
    data = json.loads(r.stdout)
    assert data["ok"] and data["mode"] == "synthetic" and data["model"] == "tiny"
    assert data["steps"] == 4 and data["warmup_steps"] == 1
    assert data["loss_finite"] is True and data["loss_first"] > 0
    assert data["its"] > 0 and data["its_low"] <= data["its"] * 1.0001 <= data["its_high"] * 1.0002
    assert data["torch"].startswith("2.13.0")
    assert data["optimizer"] == "otdoctor minimal Adafactor"  # no transformers in this venv
    assert data["peak_vram_bytes"] is None and data["peak_vram_source"] == "no GPU used"
    assert data["peak_memory_bytes"] > 10 * 2**20
    saved = Path(data["saved_to"])
    assert saved.is_file() and json.loads(saved.read_text())["its"] == data["its"]
    # The temporary folder is gone.
    assert list((tmp_path / "otdoctor-cache" / "smoke" / "tmp").iterdir()) == []

    # The result feeds `otdoctor estimate`, which says so.
    r = run_cli("estimate", "--images", "8", "--epochs", "2", "--model", "tiny", "--resolution", "64")
    assert r.returncode == 0, r.stderr
    assert "smoke synthetic run on CPU" in r.stdout

    # CI gates: an impossible speed fails with exit 1 and says why.
    r = tiny_smoke(run_cli, torch_venv, "--steps", "2", "--warmup", "0", "--min-its", "100000")
    assert r.returncode == 1
    assert "below --min-its 100000" in r.stdout


@pytest.mark.slow
def test_on_a_cpu_an_unsized_smoke_says_so_and_runs_what_finishes(run_cli, torch_venv, tmp_path):
    # A checkout whose venv has torch and diffusers, no base model, no NVIDIA GPU on this machine:
    # the SDXL default (1024 px, ~15 GB of RAM, minutes a step on a CPU) gives way to the toy UNet.
    ot = make_onetrainer(tmp_path / "OneTrainer")
    (ot / "venv").symlink_to(torch_venv, target_is_directory=True)
    started = time.monotonic()
    r = run_cli("smoke", "--ot-dir", str(ot), "--format", "json", timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    data = json.loads(r.stdout)
    assert data["ok"] and data["model"] == "tiny" and data["gpu"] != "unknown"
    said = " ".join(data["mode_reason"])
    assert "no base model named" in said and "no NVIDIA GPU" in said and "toy UNet (--tiny)" in said
    assert "otdoctor smoke --synthetic --model sdxl --resolution 512" in said  # how to measure SDXL anyway
    assert "no NVIDIA GPU" in r.stderr  # said before the run starts, not only in the result
    assert time.monotonic() - started < 300


@pytest.mark.slow
def test_a_timeout_prints_the_figures_it_has(run_cli, torch_venv):
    r = tiny_smoke(run_cli, torch_venv, "--steps", "1000000", "--warmup", "1", "--timeout-s", "45")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    first = next(line for line in r.stderr.splitlines() if line.startswith("otdoctor: error: "))
    assert re.fullmatch(
        r"otdoctor: error: the synthetic run did not finish within 45 s: \d+ of 1000001 steps done, "
        r"\S+ it/s over \d+ steps, model ready after \d+ s, peak RAM \d+(\.\d+)? [MG]iB",
        first,
    ), first
    assert "otdoctor smoke --tiny" in r.stderr  # what finishes instead


def test_synthetic_without_torch_interpreter_is_one_line(run_cli, tmp_path):
    r = run_cli("smoke", "--tiny")
    assert r.returncode == 2
    assert "no interpreter with torch and diffusers" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args,named",
    [
        (["--steps", "0"], "--steps must be >= 1"),  # used to print the "running" line first
        (["--tiny", "--batch-size", "0"], "--batch-size must be 1 or more"),  # 0 was silently the default
        (["--tiny", "--resolution", "0"], "--resolution must be a pixel size"),
        (["--set", "garbage"], "--set wants KEY=VALUE"),  # was ignored in synthetic mode
        (["--tiny", "--python", "notapython.txt"], "is not an executable Python interpreter"),  # was an internal error
        (["--device", "gpu"], "unknown --device 'gpu'"),  # was handed to torch inside the run
        (["--tiny", "--timeout-s", "0"], "--timeout-s must be a positive"),
        (["--tiny", "--min-its", "-1"], "--min-its must be a positive"),  # a gate that could never fail
    ],
)
def test_bad_options_are_one_line_before_anything_runs(run_cli, tmp_path, args, named):
    (tmp_path / "notapython.txt").write_text("")  # a relative, non-executable file: run_cli's cwd is tmp_path
    r = run_cli("smoke", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and r.stderr.startswith("otdoctor: error: ")
    assert named in r.stderr and r.stdout == ""


# OneTrainer mode -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tqdm_venv(tmp_path_factory) -> Path:
    """A venv with only tqdm: what the stand-in train.py needs (OneTrainer's venv has it)."""
    venv = make_venv(tmp_path_factory.mktemp("ot-venv") / "venv", pyenv_python("3.11"))
    pip_install(venv, "tqdm")
    return venv


@pytest.fixture
def onetrainer(tmp_path, tqdm_venv) -> Path:
    root = make_onetrainer(tmp_path / "OneTrainer")
    shutil.copyfile(FAKE_TRAIN, root / "scripts" / "train.py")
    (root / "venv").symlink_to(tqdm_venv, target_is_directory=True)
    (root / "models").mkdir()
    (root / "models" / "base.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return root


@pytest.fixture
def user_config(tmp_path, onetrainer) -> Path:
    me = tmp_path / "dataset" / "me"
    me.mkdir(parents=True)
    for i, size in enumerate([(64, 64), (64, 96), (96, 64)]):
        Image.new("RGB", size, (i * 40, 100, 200)).save(me / f"img{i}.png")
        (me / f"img{i}.txt").write_text("ohwx man")
    cfg = {
        "__version": 11,
        "model_type": "STABLE_DIFFUSION_XL_10_BASE",
        "training_method": "FINE_TUNE",
        "base_model_name": "models/base.safetensors",
        "resolution": "1024",
        "train_dtype": "BFLOAT_16",
        "epochs": 200,
        "sample_after": 10,
        "sample_after_unit": "MINUTE",
        "save_every": 15,
        "save_every_unit": "EPOCH",
        "workspace_dir": str(tmp_path / "user-workspace"),
        "concepts": [{"name": "me", "path": str(me), "balancing": 1.0}],
    }
    path = tmp_path / "my-config.json"
    path.write_text(json.dumps(cfg))
    return path


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for the user; its parent (otdoctor) reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_onetrainer_mode_measures_and_cleans_up(run_cli, onetrainer, user_config, tmp_path):
    record = tmp_path / "record.jsonl"
    r = run_cli(
        "smoke",
        "--ot-dir",
        str(onetrainer),
        "--config",
        str(user_config),
        "--steps",
        "8",
        "--warmup",
        "2",
        "--format",
        "json",
        env={"FAKE_OT_RECORD": str(record), "FAKE_OT_STEP_S": "0.15", "FAKE_OT_LOAD_S": "1.0"},
    )
    assert r.returncode == 0, r.stderr + r.stdout
    data = json.loads(r.stdout)
    assert data["ok"] and data["mode"] == "onetrainer" and data["model"] == "sdxl"
    assert data["its"] == pytest.approx(1 / 0.15, rel=0.35)
    assert data["steps"] >= 8
    assert data["load_s"] >= 1.0
    assert data["caching_images_per_s"] and data["caching_images_per_s"] > 1
    assert data["peak_vram_bytes"] is None and "NVML unavailable" in data["peak_vram_source"]

    recs = _records(record)
    start = next(x for x in recs if x["phase"] == "start")
    end = next(x for x in recs if x["phase"] == "end")
    assert end["canceled"] is True  # stopped with Ctrl-C after the measured steps, no final save
    cfg = start["config"]
    tmp_root = tmp_path / "otdoctor-cache" / "smoke" / "tmp"
    workspace = Path(start["workspace"])
    assert tmp_root in workspace.parents  # not the user's workspace
    assert cfg["epochs"] == "1" and cfg["sample_after_unit"] == "NEVER" and cfg["save_every_unit"] == "NEVER"
    assert (
        cfg["backup_after_unit"] == "NEVER" and cfg["tensorboard"] == "false" and cfg["backup_before_save"] == "false"
    )
    assert cfg["base_model_name"] == "models/base.safetensors" and cfg["train_dtype"] == "BFLOAT_16"
    assert "concepts" not in cfg
    # Everything it wrote is gone; the user's workspace was never touched.
    assert not workspace.exists()
    assert list(tmp_root.iterdir()) == []
    assert not (tmp_path / "user-workspace").exists()
    assert not _alive(start["pid"])


def test_onetrainer_mode_without_config_uses_guide_preset(run_cli, onetrainer, tmp_path):
    record = tmp_path / "record.jsonl"
    r = run_cli(
        "smoke",
        "--ot-dir",
        str(onetrainer),
        "--base-model",
        "models/base.safetensors",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--keep",
        "--format",
        "json",
        env={"FAKE_OT_RECORD": str(record)},
    )
    assert r.returncode == 0, r.stderr + r.stdout
    start = _records(record)[0]
    assert start["preset"] is True  # the guide's settings go in as a preset, like OneTrainer's own
    cfg = start["config"]
    assert cfg["optimizer"]["optimizer"] == "ADAFACTOR" and cfg["optimizer"]["eps"] == 1e-30
    assert cfg["masked_training"] == "false"  # generated images have no masks
    kept = Path(start["workspace"]).parent
    assert kept.is_dir() and (kept / "dataset").is_dir()  # --keep keeps it
    assert len(list((kept / "dataset").glob("*.png"))) == (1 + 3 + 5)  # warm-up, measured, spare


def test_onetrainer_error_is_explained(run_cli, onetrainer, user_config, tmp_path):
    r = run_cli(
        "smoke", "--ot-dir", str(onetrainer), "--config", str(user_config), "--steps", "3", env={"FAKE_OT_FAIL": "oom"}
    )
    assert r.returncode == 1
    assert "CUDA out of memory" in r.stdout
    assert list((tmp_path / "otdoctor-cache" / "smoke" / "tmp").iterdir()) == []


def test_base_model_missing_falls_back_to_synthetic(run_cli, onetrainer, user_config):
    (onetrainer / "models" / "base.safetensors").unlink()
    r = run_cli("smoke", "--ot-dir", str(onetrainer), "--config", str(user_config), "--python", "/nonexistent/python")
    assert "is not downloaded yet: synthetic run instead" in r.stderr
    assert r.returncode == 2 and "interpreter not found" in r.stderr


def _start_smoke(base_env, onetrainer, user_config, record, tmp_path):
    env = {**base_env, "FAKE_OT_RECORD": str(record), "FAKE_OT_STEP_S": "0.5"}
    proc = subprocess.Popen(
        [otdoctor_exe(), "smoke", "--ot-dir", str(onetrainer), "--config", str(user_config), "--steps", "50"],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(x["phase"] == "training" for x in _records(record)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stand-in never started training"
        time.sleep(0.05)
    start = _records(record)[0]
    assert Path(start["workspace"]).is_dir()
    return proc, start


def test_killing_otdoctor_mid_run_leaves_nothing_behind(base_env, onetrainer, user_config, tmp_path):
    record = tmp_path / "record.jsonl"
    proc, start = _start_smoke(base_env, onetrainer, user_config, record, tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err  # 143, as a shell reports a SIGTERM
    assert "stopped by SIGTERM" in err
    assert not Path(start["workspace"]).exists()
    assert list((tmp_path / "otdoctor-cache" / "smoke" / "tmp").iterdir()) == []
    assert not _alive(start["pid"])
    assert _records(record)[-1] == {"phase": "end", "canceled": True}


def test_sigkill_of_otdoctor_stops_training_and_next_run_sweeps(run_cli, base_env, onetrainer, user_config, tmp_path):
    record = tmp_path / "record.jsonl"
    proc, start = _start_smoke(base_env, onetrainer, user_config, record, tmp_path)
    proc.kill()  # no chance to clean up
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(start["pid"]) and time.monotonic() < deadline:  # the child dies with its parent
        time.sleep(0.05)
    assert not _alive(start["pid"])
    stale = Path(start["workspace"]).parent
    assert stale.exists()
    r = run_cli("smoke", "--ot-dir", str(onetrainer), "--config", str(user_config), "--steps", "2", "--warmup", "0")
    assert r.returncode == 0, r.stderr + r.stdout
    assert not stale.exists()


META_CHECK = """
import json, sys, torch
from diffusers import UNet2DConditionModel
models = json.loads(sys.argv[1])
out = {}
for name in ("sdxl", "sd15"):
    m = models[name]
    with torch.device("meta"):  # shapes only: no 10 GB of weights on a test machine
        unet = UNet2DConditionModel(**m["unet"])
        side = m["default_resolution"] // m["vae_scale"]
        kw = {}
        if m.get("text_embeds_dim"):
            kw["added_cond_kwargs"] = {"text_embeds": torch.randn(1, m["text_embeds_dim"]),
                                       "time_ids": torch.randn(1, m["time_ids"])}
        y = unet(torch.randn(1, m["latent_channels"], side, side), torch.tensor([10]),
                 encoder_hidden_states=torch.randn(1, m["text_tokens"], m["unet"]["cross_attention_dim"]), **kw).sample
    out[name] = {"parameters": sum(p.numel() for p in unet.parameters()), "shape": list(y.shape)}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_unet_tables_are_the_real_architectures(torch_venv):
    """The SDXL and SD 1.5 configs in data/unet_configs.toml build UNets with the published parameter
    counts, and the synthetic trainer's inputs (SDXL's pooled text and time ids) fit them."""
    from otdoctor.smoke.run import unet_models

    r = subprocess.run(
        [str(torch_venv / "bin" / "python"), "-c", META_CHECK, json.dumps(unet_models())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["sdxl"] == {"parameters": 2_567_463_684, "shape": [1, 4, 128, 128]}
    assert got["sd15"] == {"parameters": 859_520_964, "shape": [1, 4, 64, 64]}
