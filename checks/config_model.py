"""Config checks on the model: the model type against the base model, the VAE override, and the
data types of training and of the saved output."""

from __future__ import annotations

from otdoctor.checkpoints.safetensors import EMBEDDING, LORA, architecture_of_model_type
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.render.units import human_bytes

from .config_common import (
    CONFIG_FILE,
    base_model,
    checkpoint_bytes,
    model_label,
    train_cmd,
    train_config,
    training_table,
)


class ModelType(Check):
    id = "config.model-type"
    title = "Model type matches the base model"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        bm = base_model(ctx)
        chosen = f"model_type {cfg.model_type} ({model_label(cfg.model_type)}), training_method {cfg.training_method}"
        data = {
            "model_type": cfg.model_type,
            "training_method": cfg.training_method,
            "base_model": bm.name,
            "architecture": bm.architecture,
        }
        if bm.error:
            return CheckResult.fail(
                f"base model {bm.name}: {bm.error}",
                expected="a readable SDXL or SD 1.5 checkpoint, diffusers folder or Hugging Face repository",
                why="OneTrainer stops while loading the base model",
                fix=Fix(
                    "download the checkpoint again, or point base_model_name at the right file",
                    ("otdoctor models list",),
                ),
                data=data,
            )
        expected_arch = architecture_of_model_type(cfg.model_type)
        if bm.architecture in (LORA, EMBEDDING):
            return CheckResult.fail(
                f"base model {bm.name} is a {bm.architecture}, not a full model; {chosen}",
                expected="a full checkpoint (UNet, text encoders, VAE) as the base model",
                why="OneTrainer cannot fine-tune on top of a LoRA or embedding file",
                fix=Fix("choose the checkpoint the LoRA was made for as base model; load a LoRA under the LoRA tab"),
                data=data,
            )
        if bm.architecture is None or expected_arch is None or bm.architecture == "unknown":
            return CheckResult.ok(f"{chosen}; the base model's architecture is not known here ({bm.how})", data=data)
        if bm.architecture != expected_arch:
            right = training_table()["model_type_for_architecture"].get(bm.architecture)
            return CheckResult.fail(
                f"base model {bm.name} is {bm.architecture} ({bm.how}), but {chosen}",
                expected=f"model_type for {bm.architecture}: {right} ({model_label(right)})",
                why="OneTrainer builds the wrong network for these weights: loading fails or training produces garbage",
                fix=Fix(
                    f"choose `{model_label(right)}` and `Fine Tune` at the top right of the OneTrainer UI",
                    (train_cmd(ctx, f"model_type={right}"),),
                ),
                data=data,
            )
        return CheckResult.ok(f"{chosen}; base model is {bm.architecture} ({bm.how})", data=data)


class VaeOverride(Check):
    id = "config.vae-override"
    title = "No VAE override on a custom model"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        vae = str(cfg.get("vae.model_name") or "")
        if not vae:
            return CheckResult.ok("no VAE override (the base model's own VAE is used)")
        bm = base_model(ctx)
        if bm.custom:
            return CheckResult.warn(
                f"VAE override {vae} set on the custom base model {bm.name}",
                expected="no VAE override with a custom checkpoint",
                why="custom checkpoints ship their own tuned VAE; "
                'the guide: "When you use custom models like this do not choose VAE"',
                fix=Fix("clear `VAE Override` in the model tab", (train_cmd(ctx, "vae.model_name="),)),
            )
        return CheckResult.ok(f"VAE override {vae} on the reference model {bm.name}")


class OutputDtype(Check):
    id = "config.output-dtype"
    title = "Output data type"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        dtype = str(cfg.get("output_dtype"))
        size = checkpoint_bytes(ctx, cfg, dtype)
        data = {"output_dtype": dtype, "bytes_per_save": size}
        if dtype == "FLOAT_32" and cfg.training_method == "FINE_TUNE" and size:
            half = checkpoint_bytes(ctx, cfg, "BFLOAT_16") or 0
            return CheckResult.warn(
                f"output_dtype FLOAT_32: each save is about {human_bytes(size)} ({size / 1e9:.1f} GB) instead of "
                f"{human_bytes(half)} ({half / 1e9:.1f} GB) in bfloat16",
                expected="Output Data Type bfloat16 (BFLOAT_16), as in the guide",
                why="float32 doubles every saved checkpoint for no visible gain; saves fill the disk twice as fast",
                fix=Fix(
                    "set `Output Data Type` to bfloat16 in the model tab", (train_cmd(ctx, "output_dtype=BFLOAT_16"),)
                ),
                data=data,
            )
        return CheckResult.ok(
            f"output_dtype {dtype}" + (f" (about {human_bytes(size)} per save)" if size else ""), data=data
        )


class TrainDtype(Check):
    id = "config.train-dtype"
    title = "Training data type"
    area = "config"
    requires = (CONFIG_FILE,)
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        dtype = str(cfg.get("train_dtype"))
        if dtype == "FLOAT_16" and cfg.is_sdxl:
            return CheckResult.warn(
                "train_dtype FLOAT_16 on SDXL",
                expected="Train Data Type bfloat16 (BFLOAT_16)",
                why='SDXL overflows float16: the loss becomes NaN ("Training loss became NaN") and the run is wasted',
                fix=Fix(
                    "set `Train Data Type` to bfloat16 in the training tab", (train_cmd(ctx, "train_dtype=BFLOAT_16"),)
                ),
            )
        return CheckResult.ok(f"train_dtype {dtype}")
