"""Each config rule: one setup where it fires, one where it stays quiet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from otdoctor.engine.results import Status
from tests.support.trainingdata import Scenario, checkpoint, concept, guide_setup, part


@pytest.fixture
def sc(tmp_path: Path, base_env: dict[str, str]) -> Scenario:
    return Scenario(tmp_path / "ot", base_env)


def one_concept(sc: Scenario, **cfg):
    sc.folder("me", 4)
    return sc.write([concept("me", "data/me")], **cfg)


# model_type against the checkpoint ---------------------------------------------------------------
def test_sdxl_file_with_sd15_model_type_fails(sc: Scenario) -> None:
    ckpt = checkpoint(sc.root / "models" / "RealVisXL_V4.0.safetensors", "SDXL")
    one_concept(sc, base_model_name=str(ckpt), model_type="STABLE_DIFFUSION_15", training_method="FINE_TUNE")
    r = sc.run()["config.model-type"]
    assert r.status is Status.FAIL
    assert "is SDXL" in r.summary and "training_method FINE_TUNE" in r.summary
    assert "Stable Diffusion XL 1.0 Base" in r.fix.summary
    assert "model_type=STABLE_DIFFUSION_XL_10_BASE" in r.fix.commands[0]


def test_sd15_file_with_sdxl_model_type_fails(sc: Scenario) -> None:
    ckpt = checkpoint(sc.root / "models" / "hyper.safetensors", "SD 1.5")
    one_concept(sc, base_model_name="models/hyper.safetensors", model_type="STABLE_DIFFUSION_XL_10_BASE")
    r = sc.run()["config.model-type"]
    assert r.status is Status.FAIL and "SD 1.5" in r.summary and ckpt.exists()


def test_matching_model_type_passes(sc: Scenario) -> None:
    ckpt = checkpoint(sc.root / "models" / "xl.safetensors", "SDXL")
    one_concept(sc, base_model_name=str(ckpt), model_type="STABLE_DIFFUSION_XL_10_BASE")
    r = sc.run()["config.model-type"]
    assert r.status is Status.OK and "base model is SDXL" in r.summary


def test_missing_local_base_model_fails(sc: Scenario) -> None:
    one_concept(sc, base_model_name="models/nothere.safetensors")
    r = sc.run()["config.model-type"]
    assert r.status is Status.FAIL and "does not exist" in r.summary


# VAE override ------------------------------------------------------------------------------------
def test_vae_override_on_custom_model_warns(sc: Scenario) -> None:
    ckpt = checkpoint(sc.root / "models" / "xl.safetensors", "SDXL")
    one_concept(
        sc,
        base_model_name=str(ckpt),
        model_type="STABLE_DIFFUSION_XL_10_BASE",
        vae=part(model_name="madebyollin/sdxl-vae-fp16-fix"),
    )
    r = sc.run()["config.vae-override"]
    assert r.status is Status.WARN and "madebyollin/sdxl-vae-fp16-fix" in r.summary


def test_no_vae_override_is_quiet(sc: Scenario) -> None:
    one_concept(sc)
    assert sc.run()["config.vae-override"].status is Status.OK


# dtypes ------------------------------------------------------------------------------------------
def test_float32_output_warns_with_size_per_save(sc: Scenario) -> None:
    one_concept(
        sc,
        model_type="STABLE_DIFFUSION_XL_10_BASE",
        base_model_name="stabilityai/stable-diffusion-xl-base-1.0",
        output_dtype="FLOAT_32",
    )
    r = sc.run()["config.output-dtype"]
    assert r.status is Status.WARN
    assert "13.9 GB" in r.summary and "6.9 GB" in r.summary


def test_bf16_output_is_quiet(sc: Scenario) -> None:
    one_concept(sc, model_type="STABLE_DIFFUSION_XL_10_BASE", output_dtype="BFLOAT_16")
    assert sc.run()["config.output-dtype"].status is Status.OK


def test_fp16_training_on_sdxl_warns(sc: Scenario) -> None:
    one_concept(sc, model_type="STABLE_DIFFUSION_XL_10_BASE", train_dtype="FLOAT_16")
    r = sc.run()["config.train-dtype"]
    assert r.status is Status.WARN and "train_dtype=BFLOAT_16" in r.fix.commands[0]


def test_fp16_training_on_sd15_is_quiet(sc: Scenario) -> None:
    one_concept(sc, model_type="STABLE_DIFFUSION_15", train_dtype="FLOAT_16")
    assert sc.run()["config.train-dtype"].status is Status.OK


# learning rates ----------------------------------------------------------------------------------
def test_text_encoder_lr_equal_to_unet_warns(sc: Scenario) -> None:
    one_concept(sc, learning_rate=1e-5)  # text_encoder.learning_rate null: same as the UNet
    r = sc.run()["config.text-encoder-lr"]
    assert r.status is Status.WARN and "text_encoder 1e-05" in r.summary


def test_text_encoder_lr_below_unet_is_quiet(sc: Scenario) -> None:
    one_concept(sc, learning_rate=1e-5, text_encoder=part(learning_rate=3e-6))
    assert sc.run()["config.text-encoder-lr"].status is Status.OK


# fused back pass ---------------------------------------------------------------------------------
def test_fused_back_pass_with_accumulation_fails(sc: Scenario) -> None:
    one_concept(sc, optimizer={"optimizer": "ADAFACTOR", "fused_back_pass": True}, gradient_accumulation_steps=4)
    r = sc.run()["config.fused-back-pass"]
    assert r.status is Status.FAIL and "gradient_accumulation_steps 4" in r.summary


def test_fused_back_pass_without_accumulation_is_quiet(sc: Scenario) -> None:
    one_concept(sc, optimizer={"optimizer": "ADAFACTOR", "fused_back_pass": True}, gradient_accumulation_steps=1)
    assert sc.run()["config.fused-back-pass"].status is Status.OK


# regularisation balancing ------------------------------------------------------------------------
def test_reg_balancing_floor_trap_warns_with_exact_value(sc: Scenario) -> None:
    sc.folder("me", 10)
    sc.folder("reg", 77, captions=False)
    sc.write([concept("me", "data/me"), concept("reg", "data/reg", balancing=10 / 77)])
    r = sc.run()["config.reg-balancing"]
    assert r.status is Status.WARN
    text = "\n".join(r.details)
    assert "floor(77 x 0.12987012987012986) = 9" in text and "floating point" in text
    assert "use balancing 0.13 (floor(77 x 0.13) = 10), or SAMPLES with balancing 10" in text


def test_reg_balancing_that_gives_the_count_is_quiet(sc: Scenario) -> None:
    sc.folder("me", 10)
    sc.folder("reg", 77, captions=False)
    sc.write([concept("me", "data/me"), concept("reg", "data/reg", balancing=0.1299)])
    r = sc.run()["config.reg-balancing"]
    assert r.status is Status.OK and "10 regularisation samples" in r.summary


def test_reg_balancing_samples_strategy_is_quiet(sc: Scenario) -> None:
    sc.folder("me", 10)
    sc.folder("regularization", 77, captions=False)
    sc.write(
        [
            concept("me", "data/me"),
            concept("class images", "data/regularization", balancing=10.0, balancing_strategy="SAMPLES"),
        ]
    )
    assert sc.run()["config.reg-balancing"].status is Status.OK


# concepts, masks, captions -----------------------------------------------------------------------
def test_missing_and_empty_concept_folders_fail(sc: Scenario) -> None:
    sc.folder("me", 2)
    (sc.root / "data" / "empty").mkdir()
    (sc.root / "data" / "empty" / "notes.md").write_text("x")
    sc.write(
        [
            concept("me", "data/me"),
            concept("gone", "data/gone"),
            concept("empty", "data/empty"),
            concept("off", "data/gone2", enabled=False),
        ]
    )
    r = sc.run()["config.concepts"]
    assert r.status is Status.FAIL and r.summary.startswith("2 enabled concept(s)")
    assert any("data/gone does not exist" in d for d in r.details)
    assert not any("gone2" in d for d in r.details)  # disabled concepts are not looked at


def test_concepts_with_images_pass(sc: Scenario) -> None:
    one_concept(sc)
    r = sc.run()["config.concepts"]
    assert r.status is Status.OK and "'me' 4 images" in r.summary


def test_masked_training_without_masks_fails(sc: Scenario) -> None:
    sc.folder("me", 3, masks=True)
    (sc.root / "data" / "me" / "img00001-masklabel.png").unlink()
    sc.write([concept("me", "data/me")], masked_training=True)
    r = sc.run()["config.masks"]
    assert r.status is Status.FAIL and "1 training image(s) have no mask" in r.summary


def test_masked_training_with_masks_is_quiet_and_reg_needs_none(sc: Scenario) -> None:
    sc.folder("me", 3, masks=True)
    sc.folder("reg", 30, captions=False)
    sc.write([concept("me", "data/me"), concept("reg", "data/reg", balancing=0.1)], masked_training=True)
    assert sc.run()["config.masks"].status is Status.OK


def test_sample_prompts_without_txt_warn_with_count(sc: Scenario) -> None:
    folder = sc.folder("me", 5)
    for i in (1, 3):
        (folder / f"img{i:05d}.txt").unlink()
    sc.write([concept("me", "data/me")])
    r = sc.run()["config.captions"]
    assert r.status is Status.WARN and r.summary.startswith("2 image(s)")


def test_captions_present_are_quiet(sc: Scenario) -> None:
    one_concept(sc)
    assert sc.run()["config.captions"].status is Status.OK


# disk --------------------------------------------------------------------------------------------
def test_saves_that_do_not_fit_fail_with_numbers(sc: Scenario) -> None:
    one_concept(
        sc,
        model_type="STABLE_DIFFUSION_XL_10_BASE",
        base_model_name="stabilityai/stable-diffusion-xl-base-1.0",
        output_dtype="FLOAT_32",
        epochs=100000,
        save_every=1,
        save_every_unit="EPOCH",
    )
    r = sc.run()["config.disk"]
    assert r.status is Status.FAIL and "not enough disk" in r.summary
    assert any("100000 save(s) x 12.9 GiB (FLOAT_32)" in d for d in r.details)


def test_no_saves_fit(sc: Scenario) -> None:
    one_concept(sc, model_type="STABLE_DIFFUSION_15", save_every_unit="NEVER", backup_after_unit="NEVER")
    r = sc.run()["config.disk"]
    assert r.status is Status.OK and "enough free space" in r.summary


# workspace, EMA ----------------------------------------------------------------------------------
def test_non_empty_workspace_is_reported(sc: Scenario) -> None:
    one_concept(sc)
    (sc.root / "workspace" / "run" / "samples").mkdir(parents=True)
    r = sc.run()["config.workspace"]
    assert r.status is Status.OK and "is not empty" in r.summary


def test_fresh_workspace_is_quiet(sc: Scenario) -> None:
    one_concept(sc)
    assert "new or empty" in sc.run()["config.workspace"].summary


def test_ema_on_sdxl_is_information(sc: Scenario) -> None:
    one_concept(sc, model_type="STABLE_DIFFUSION_XL_10_BASE", ema="GPU")
    r = sc.run()["config.ema"]
    assert r.status is Status.OK and "no benefit for SDXL" in r.summary


def test_ema_off_is_quiet(sc: Scenario) -> None:
    one_concept(sc, model_type="STABLE_DIFFUSION_XL_10_BASE")
    assert sc.run()["config.ema"].summary == "EMA OFF"


# The guide's own setup ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def guide_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("guide") / "OneTrainer"
    guide_setup(root)
    return root


def test_the_guides_setup_has_no_failures(guide_root: Path, run_cli, tmp_path: Path) -> None:
    r = run_cli(
        "check",
        "--config",
        str(guide_root / "configs" / "person.json"),
        "--ot-dir",
        str(guide_root),
        "--only",
        "config",
        "--only",
        "dataset",
        "-f",
        "json",
    )
    report = json.loads(r.stdout)
    status = {c["id"]: c["status"] for c in report["checks"]}
    summary = {c["id"]: c["summary"] for c in report["checks"]}
    assert len(status) == 20
    # 36 images + 5000 at 0.0072: exactly 36 regularisation samples per epoch.
    assert status["config.reg-balancing"] == "ok" and "36 regularisation samples" in summary["config.reg-balancing"]
    assert "'regularization man' 5000 images" in summary["config.concepts"]
    # 13 saves (every 15 of 200 epochs) + the final model, 6.9 GB each in bf16: a failure only
    # where the disk really lacks room.
    free = shutil.disk_usage(guide_root).free
    need = 14 * 3_469_000_000 * 2 + 2_000_000_000
    assert status["config.disk"] == ("fail" if need > free else "ok")
    others = {k: v for k, v in status.items() if k != "config.disk"}
    assert set(others.values()) == {"ok"}, {k: (v, summary[k]) for k, v in others.items() if v != "ok"}
    assert r.returncode == (1 if need > free else 0)


def test_reused_cache_is_reported(sc: Scenario) -> None:
    one_concept(sc, clear_cache_before_training=False)
    (sc.root / "workspace-cache" / "run" / "image").mkdir(parents=True)
    r = sc.run()["config.workspace"]
    assert r.status is Status.OK and "is reused" in r.summary


def test_model_type_mismatch_through_the_cli(sc: Scenario, run_cli) -> None:
    ckpt = checkpoint(sc.root / "models" / "RealVisXL_V4.0.safetensors", "SDXL")
    cfg = one_concept(
        sc, base_model_name=str(ckpt), model_type="STABLE_DIFFUSION_15", train_dtype="FLOAT_16", output_dtype="FLOAT_32"
    )
    r = run_cli("check", "--config", str(cfg), "--ot-dir", str(sc.root), "--only", "config")
    assert r.returncode == 1, r.stderr
    assert "✗ Model type matches the base model (config.model-type)" in r.stdout
    assert "choose `Stable Diffusion XL 1.0 Base` and `Fine Tune`" in r.stdout
    # Sizes follow the checkpoint's real architecture (SDXL), not the wrong model_type.
    assert "(13.9 GB) instead of" in r.stdout


def test_pickle_checkpoint_is_not_judged(sc: Scenario) -> None:
    (sc.root / "models").mkdir(parents=True)
    (sc.root / "models" / "old.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    one_concept(sc, base_model_name="models/old.ckpt")
    r = sc.run()["config.model-type"]
    assert r.status is Status.OK and "a .ckpt file, not read" in r.summary


def test_int8_output_is_counted_as_one_byte_per_weight_by_system_disk() -> None:
    # system.disk counted an INT_8 save as 16-bit: dtypes missing from its own factor table were.
    from otdoctor.checks.system_disk import save_bytes

    sdxl = "STABLE_DIFFUSION_XL_10_BASE"
    assert save_bytes(sdxl, "INT_8", "FINE_TUNE") * 2 == save_bytes(sdxl, "BFLOAT_16", "FINE_TUNE")
    assert save_bytes(sdxl, "FLOAT_32", "FINE_TUNE") == 2 * save_bytes(sdxl, "BFLOAT_16", "FINE_TUNE")
    assert save_bytes(sdxl, "NFLOAT_4", "FINE_TUNE") * 4 == save_bytes(sdxl, "BFLOAT_16", "FINE_TUNE")
