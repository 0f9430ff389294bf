"""The training config against the guide's pitfalls: model type, dtypes, learning rates, concepts, disk.

Every check here looks at the config `otconfig.config_facts` picked (`--config`, else the UI's
last-session state `training_presets/#.json`) and requires `config.file`, which reports that choice
and any load problem (malformed JSON becomes a FAIL finding, not an aborted run).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.safetensors import (
    EMBEDDING,
    LORA,
    HeaderError,
    architecture_of_model_type,
    detect_architecture,
    read_header,
)
from otdoctor.dataset.scan import listing_facts
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.onetrainer.config import TrainConfig, config_facts, data_table
from otdoctor.render import human_bytes

CONFIG_FILE = "config.file"


def _cfg(ctx: Context) -> TrainConfig:
    cfg = config_facts(ctx).config
    assert cfg is not None  # config.file passed, so there is one
    return cfg


def _train_cmd(ctx: Context, *values: str) -> str:
    path = config_facts(ctx).path
    extra = " ".join(f"--config-value {v}" for v in values)
    return f'python scripts/train.py --config-path "{path}" {extra}'.rstrip()


def _label(model_type: str) -> str:
    return str(data_table("training")["model_type_labels"].get(model_type, model_type))


class ConfigFile(Check):
    id = CONFIG_FILE
    title = "Training config"
    area = "config"

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = config_facts(ctx)
        if facts.path is None:
            return CheckResult.skip(
                "no training config found",
                details=("neither --config nor the UI's last-used state training_presets/#.json",),
                fix=Fix("name the config to check", ("otdoctor check --config path/to/config.json",)),
            )
        if facts.error is not None:
            return CheckResult.fail(
                facts.error,
                expected="a JSON object of OneTrainer settings",
                why="OneTrainer cannot load this config, so training does not start",
                fix=Fix("correct the file at that line, or export the config again from the UI (top bar: Export)"),
                data={"path": str(facts.path), "source": facts.source},
            )
        cfg = facts.config
        assert cfg is not None
        kind = (
            f"full config, __version {cfg.version}"
            if not cfg.is_preset
            else "preset (no __version: partial, defaults for the rest)"
        )
        concepts = (
            f"{len(cfg.concepts)} concept(s) from {cfg.concepts_source}" if cfg.concepts_source else "no concepts"
        )
        summary = f"{facts.path} ({facts.source}; {kind}; {concepts})"
        data = {
            "path": str(facts.path),
            "source": facts.source,
            "version": cfg.version,
            "preset": cfg.is_preset,
            "model_type": cfg.model_type,
            "training_method": cfg.training_method,
            "warnings": list(cfg.warnings),
        }
        if cfg.warnings:
            return CheckResult.warn(
                summary,
                details=tuple(cfg.warnings),
                expected=f"keys and __version {cfg.version or 11} that OneTrainer writes",
                why="an unknown key is ignored by OneTrainer (a typo silently does nothing); a newer format may be read wrongly here",
                fix=Fix("export the config again from the OneTrainer UI, or correct the keys named above"),
                data=data,
            )
        return CheckResult.ok(summary, data=data)


# Base model architecture ------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseModel:
    name: str
    path: Path | None  # the local file or folder, when it is one
    architecture: str | None  # SDXL, SD 1.5, SD 2.x, LoRA, embedding, unknown; None = not known here
    how: str  # "read from the checkpoint", "diffusers model_index.json", "known repository"...
    error: str | None = None  # a local file that cannot be read

    @property
    def custom(self) -> bool:
        return self.name not in data_table("training")["official_base_models"]


def base_model(ctx: Context) -> BaseModel:
    def compute() -> BaseModel:
        cfg = _cfg(ctx)
        name = cfg.base_model_name
        local = cfg.resolve(name) if name else None
        if local is not None and local.is_file() and local.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
            # A pickle checkpoint OneTrainer can load; reading it would mean unpickling: not here.
            return BaseModel(name, local, None, f"a {local.suffix} file, not read")
        if local is not None and local.is_file():
            try:
                header = read_header(local)
            except (HeaderError, OSError) as exc:
                return BaseModel(name, local, None, "the checkpoint", error=str(exc))
            return BaseModel(name, local, detect_architecture(header.tensors), "read from the checkpoint's tensors")
        if local is not None and local.is_dir():
            return BaseModel(name, local, _diffusers_architecture(local), "the diffusers folder's model_index.json")
        known = data_table("training")["hub_architectures"].get(name)
        if known:
            return BaseModel(name, None, known, "a known Hugging Face repository")
        looks_local = name.startswith(("/", ".", "~")) or name.endswith((".safetensors", ".ckpt", ".pt"))
        if looks_local:
            return BaseModel(name, local, None, "the checkpoint", error=f"{local} does not exist")
        return BaseModel(name, None, None, "a Hugging Face repository otdoctor does not know")

    return ctx.memo("config.base_model", compute)


def _diffusers_architecture(folder: Path) -> str | None:
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cls = str(index.get("_class_name", ""))
    if "XL" in cls:
        return "SDXL"
    if cls.startswith("StableDiffusion"):
        try:
            te = json.loads((folder / "text_encoder" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "SD 1.5"
        return "SD 2.x" if te.get("hidden_size") == 1024 else "SD 1.5"
    return None


class ModelType(Check):
    id = "config.model-type"
    title = "Model type matches the base model"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        bm = base_model(ctx)
        chosen = f"model_type {cfg.model_type} ({_label(cfg.model_type)}), training_method {cfg.training_method}"
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
            right = data_table("training")["model_type_for_architecture"].get(bm.architecture)
            return CheckResult.fail(
                f"base model {bm.name} is {bm.architecture} ({bm.how}), but {chosen}",
                expected=f"model_type for {bm.architecture}: {right} ({_label(right)})",
                why="OneTrainer builds the wrong network for these weights: loading fails or training produces garbage",
                fix=Fix(
                    f"choose `{_label(right)}` and `Fine Tune` at the top right of the OneTrainer UI",
                    (_train_cmd(ctx, f"model_type={right}"),),
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
        cfg = _cfg(ctx)
        vae = str(cfg.get("vae.model_name") or "")
        if not vae:
            return CheckResult.ok("no VAE override (the base model's own VAE is used)")
        bm = base_model(ctx)
        if bm.custom:
            return CheckResult.warn(
                f"VAE override {vae} set on the custom base model {bm.name}",
                expected="no VAE override with a custom checkpoint",
                why='custom checkpoints ship their own tuned VAE; the guide: "When you use custom models like this do not choose VAE"',
                fix=Fix("clear `VAE Override` in the model tab", (_train_cmd(ctx, "vae.model_name="),)),
            )
        return CheckResult.ok(f"VAE override {vae} on the reference model {bm.name}")


def _size_architecture(ctx: Context, cfg: TrainConfig) -> str | None:
    """What the saves will hold: the base model's real architecture when known, else model_type's."""
    arch = base_model(ctx).architecture
    if arch in data_table("training")["checkpoint_parameters"]:
        return arch
    return architecture_of_model_type(cfg.model_type)


def _checkpoint_bytes(ctx: Context, cfg: TrainConfig, dtype: str) -> int | None:
    table = data_table("training")
    arch = _size_architecture(ctx, cfg)
    per_weight = table["dtype_bytes"].get(dtype)
    if arch is None or per_weight is None:
        return None
    if cfg.training_method == "LORA":
        params = table["lora_parameters_per_rank"].get(arch, 0) * cfg.int_value("lora_rank")
    elif cfg.training_method == "EMBEDDING":
        return 1_000_000
    else:
        params = table["checkpoint_parameters"].get(arch)
        if params is None:
            return None
    return int(params * per_weight)


class OutputDtype(Check):
    id = "config.output-dtype"
    title = "Output data type"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        dtype = str(cfg.get("output_dtype"))
        size = _checkpoint_bytes(ctx, cfg, dtype)
        data = {"output_dtype": dtype, "bytes_per_save": size}
        if dtype == "FLOAT_32" and cfg.training_method == "FINE_TUNE" and size:
            half = _checkpoint_bytes(ctx, cfg, "BFLOAT_16") or 0
            return CheckResult.warn(
                f"output_dtype FLOAT_32: each save is about {human_bytes(size)} ({size / 1e9:.1f} GB) instead of "
                f"{human_bytes(half)} ({half / 1e9:.1f} GB) in bfloat16",
                expected="Output Data Type bfloat16 (BFLOAT_16), as in the guide",
                why="float32 doubles every saved checkpoint for no visible gain; saves fill the disk twice as fast",
                fix=Fix(
                    "set `Output Data Type` to bfloat16 in the model tab", (_train_cmd(ctx, "output_dtype=BFLOAT_16"),)
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
        cfg = _cfg(ctx)
        dtype = str(cfg.get("train_dtype"))
        if dtype == "FLOAT_16" and cfg.is_sdxl:
            return CheckResult.warn(
                "train_dtype FLOAT_16 on SDXL",
                expected="Train Data Type bfloat16 (BFLOAT_16)",
                why='SDXL overflows float16: the loss becomes NaN ("Training loss became NaN") and the run is wasted',
                fix=Fix(
                    "set `Train Data Type` to bfloat16 in the training tab", (_train_cmd(ctx, "train_dtype=BFLOAT_16"),)
                ),
            )
        return CheckResult.ok(f"train_dtype {dtype}")


class TextEncoderLr(Check):
    id = "config.text-encoder-lr"
    title = "Text encoder learning rate below the UNet's"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        if cfg.training_method not in ("FINE_TUNE", "LORA"):
            return CheckResult.ok(f"not used by {cfg.training_method}")
        unet_lr = cfg.part_learning_rate("unet")
        parts = ["text_encoder", "text_encoder_2"] if cfg.is_sdxl else ["text_encoder"]
        trained = [p for p in parts if cfg.flag(f"{p}.train")]
        if not trained:
            return CheckResult.ok("text encoders are not trained")
        too_high = [(p, cfg.part_learning_rate(p)) for p in trained]
        too_high = [(p, lr) for p, lr in too_high if lr is not None and unet_lr is not None and lr >= unet_lr]
        if too_high:
            names = ", ".join(f"{p} {lr:g}" for p, lr in too_high)
            suggestion = f"{unet_lr * 0.3:.0e}" if unet_lr else "3e-06"
            return CheckResult.warn(
                f"text encoder learning rate not lower than the UNet's {unet_lr:g}: {names}",
                expected=f"a text encoder learning rate below {unet_lr:g} (the guide: 3e-06 with the UNet at 1e-05)",
                why='the guide: "if you use the same learning rate it will burn the model"',
                fix=Fix(
                    "set `Text Encoder 1 Learning Rate` (and 2) lower in the training tab",
                    (_train_cmd(ctx, *(f"{p}.learning_rate={suggestion}" for p, _ in too_high)),),
                ),
            )
        return CheckResult.ok(
            ", ".join(f"{p} {cfg.part_learning_rate(p):g}" for p in trained) + f" below unet {unet_lr:g}"
        )


class FusedBackPass(Check):
    id = "config.fused-back-pass"
    title = "Fused back pass and gradient accumulation"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        fused = cfg.flag("optimizer.fused_back_pass")
        steps = cfg.int_value("gradient_accumulation_steps")
        if fused and steps > 1:
            return CheckResult.fail(
                f"fused_back_pass is on with gradient_accumulation_steps {steps}",
                expected="Accumulation Steps 1 with Fused Back Pass",
                why="fused back pass updates weights during the backward pass, so there is nothing to accumulate; "
                "OneTrainer warns that it does not work with accumulation",
                fix=Fix(
                    "set `Accumulation Steps` to 1 (or turn Fused Back Pass off)",
                    (_train_cmd(ctx, "gradient_accumulation_steps=1"),),
                ),
            )
        return CheckResult.ok(f"fused_back_pass {'on' if fused else 'off'}, gradient_accumulation_steps {steps}")


# Concepts --------------------------------------------------------------------------------------
def _suggest_balancing(intended: int, n_reg: int) -> str | None:
    """The shortest decimal balancing that gives exactly `intended` samples of `n_reg` images."""
    if n_reg <= 0 or intended <= 0 or intended > n_reg:
        return None
    exact = intended / n_reg
    for digits in range(2, 12):
        scale = 10**digits
        value = math.ceil(exact * scale) / scale
        if math.floor(n_reg * value) == intended:
            return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return None


class RegBalancing(Check):
    id = "config.reg-balancing"
    title = "Regularisation balancing"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        listed = listing_facts(ctx)
        train = [c for c in listed.concepts if c.concept.counts_for_training and not c.concept.is_regularisation]
        reg = [c for c in listed.concepts if c.concept.is_regularisation and c.listing.count > 0]
        if not reg:
            return CheckResult.ok("no regularisation concept")
        intended = sum(c.concept.samples_per_epoch(c.listing.count) for c in train)
        problems: list[str] = []
        commands: list[str] = []
        data: dict[str, Any] = {"intended_samples": intended, "concepts": []}
        for c in reg:
            n = c.listing.count
            b = c.concept.balancing
            actual = c.concept.samples_per_epoch(n)
            data["concepts"].append({"name": c.name, "images": n, "balancing": b, "samples": actual})
            if actual == intended:
                continue
            strategy = c.concept.balancing_strategy
            how = f"floor({n} x {b!r}) = {actual}" if strategy == "REPEATS" else f"SAMPLES {b!r} = {actual}"
            if strategy == "REPEATS" and math.isclose(n * b, intended, rel_tol=1e-9) and actual < intended:
                how += " (floating point: the product is just below a whole number)"
            value = _suggest_balancing(intended, n)
            problems.append(
                f"concept '{c.name}': {n} images at balancing {b!r} ({strategy}) give {how} samples per epoch, "
                f"not {intended} (the training images' count)"
            )
            if value:
                problems.append(
                    f"  use balancing {value} (floor({n} x {value}) = {intended}), or SAMPLES with balancing {intended}"
                )
            else:
                problems.append(f"  use balancing strategy SAMPLES with balancing {intended}")
            commands.append(f"concept '{c.name}': balancing {value or intended} ({'REPEATS' if value else 'SAMPLES'})")
        if not problems:
            return CheckResult.ok(
                f"{', '.join(c.name for c in reg)}: {intended} regularisation samples per epoch, as many as training images",
                data=data,
            )
        return CheckResult.warn(
            f"regularisation concept(s) give a different number of samples per epoch than the {intended} training samples",
            details=tuple(problems),
            expected="regularisation samples per epoch = training images (the guide: 36/5000 = 0.0072)",
            why="the guide balances regularisation to the training set; a wrong count over- or under-weights the class images",
            fix=Fix("set the balancing in the concept's window (Concepts tab)", tuple(commands)),
            data=data,
        )


class ConceptPaths(Check):
    id = "config.concepts"
    title = "Concept folders hold images"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        listed = listing_facts(ctx)
        if not cfg.concepts:
            return CheckResult.fail(
                "the config has no concepts" + (f" ({cfg.warnings[-1]})" if cfg.warnings else ""),
                expected="at least one enabled concept with training images",
                why="OneTrainer has nothing to train on",
                fix=Fix("add a concept in the Concepts tab and save the config"),
            )
        missing = [c for c in listed.concepts if not c.listing.exists]
        empty = [c for c in listed.concepts if c.listing.exists and c.listing.count == 0]
        no_path = [c for c in cfg.concepts if c.enabled and not c.path]
        lines = [f"'{c.name}': {c.folder} does not exist" for c in missing]
        lines += [
            f"'{c.name}': {c.folder} holds no images (.bmp .jpg .jpeg .png .tif .tiff .webp .avif)" for c in empty
        ]
        lines += [f"'{c.name}': no path set" for c in no_path]
        counts = {c.name: c.listing.count for c in listed.concepts}
        if lines:
            return CheckResult.fail(
                f"{len(lines)} enabled concept(s) have no images",
                details=tuple(lines),
                expected="every enabled concept's folder exists and holds images",
                why="OneTrainer stops with an empty dataset, or silently trains without that concept",
                fix=Fix("correct the concept's path in the Concepts tab, or disable the concept"),
                data={"images": counts},
            )
        if not listed.concepts:
            return CheckResult.fail(
                "no concept is enabled",
                expected="at least one enabled concept",
                why="OneTrainer has nothing to train on",
                fix=Fix("enable a concept in the Concepts tab"),
            )
        return CheckResult.ok(", ".join(f"'{n}' {k} images" for n, k in counts.items()), data={"images": counts})


class Masks(Check):
    id = "config.masks"
    title = "Masks for masked training"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        if not cfg.flag("masked_training"):
            return CheckResult.ok("masked training is off")
        listed = listing_facts(ctx)
        lines: list[str] = []
        missing_total = 0
        for c in listed.concepts:
            if not c.listing.exists or not c.concept.counts_for_training:
                continue
            lacking = c.listing.lacking_masks()
            if not lacking:
                continue
            if c.concept.is_regularisation:
                continue  # a missing mask weights the whole image: what regularisation images want
            missing_total += len(lacking)
            lines.append(
                f"'{c.name}': {len(lacking)} of {c.listing.count} images have no -masklabel.png, e.g. {lacking[0].name}"
            )
        if lines:
            return CheckResult.fail(
                f"masked training is on but {missing_total} training image(s) have no mask",
                details=tuple(lines),
                expected="a <name>-masklabel.png beside every training image",
                why="OneTrainer uses a full white mask for an image without one, so masked training does nothing for it",
                fix=Fix(
                    "generate masks in Tools > Dataset Tools (Generate Masks, prompt `head`), or turn masked training off",
                    (_train_cmd(ctx, "masked_training=false"),),
                ),
            )
        return CheckResult.ok("every training image has a -masklabel.png mask")


class Captions(Check):
    id = "config.captions"
    title = "Captions for the prompt source"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        listed = listing_facts(ctx)
        lines: list[str] = []
        total = 0
        for c in listed.concepts:
            if not c.listing.exists:
                continue
            source = c.concept.prompt_source
            if source == "sample":
                lacking = c.listing.lacking_captions()
                if lacking:
                    total += len(lacking)
                    lines.append(
                        f"'{c.name}': {len(lacking)} of {c.listing.count} images have no .txt caption, e.g. {lacking[0].name}"
                    )
            elif source == "concept":
                prompt = c.concept.prompt_path
                cfg = _cfg(ctx)
                if not prompt or not cfg.resolve(prompt).is_file():
                    total += c.listing.count
                    lines.append(
                        f"'{c.name}': prompt source is a single text file, but {prompt or '(none set)'} does not exist"
                    )
        if lines:
            return CheckResult.warn(
                f"{total} image(s) would train with an empty prompt",
                details=tuple(lines),
                expected="a caption for every image: a .txt beside it (prompt source `From text file per sample`), "
                "or one text file for the concept",
                why="an image without a prompt trains unconditionally and does not learn your token (e.g. `ohwx man`)",
                fix=Fix("write the captions, or choose `From single text file` with a file holding `ohwx man`"),
            )
        return CheckResult.ok("every image has a prompt")


# Disk ------------------------------------------------------------------------------------------
_TIME_UNITS = ("SECOND", "MINUTE", "HOUR")


def _occurrences(every: int, unit: str, epochs: int, steps_per_epoch: int) -> int | None:
    """How many times an `every`/`unit` event happens in the run; None when it depends on speed."""
    if unit == "NEVER" or every <= 0:
        return 0
    if unit == "EPOCH":
        return epochs // every
    if unit == "STEP":
        return (epochs * steps_per_epoch) // every
    if unit == "ALWAYS":
        return epochs * steps_per_epoch
    return None


class Disk(Check):
    id = "config.disk"
    title = "Disk space for saves and backups"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        out_dtype = str(cfg.get("output_dtype"))
        save_bytes = _checkpoint_bytes(ctx, cfg, out_dtype)
        backup_bytes = _checkpoint_bytes(ctx, cfg, str(cfg.get("unet.weight_dtype")))
        if save_bytes is None or backup_bytes is None:
            return CheckResult.ok(f"otdoctor has no checkpoint size for {cfg.model_type} / {out_dtype}")
        listed = listing_facts(ctx)
        samples = sum(c.concept.samples_per_epoch(c.listing.count) for c in listed.concepts)
        steps_per_epoch = max(1, samples // max(1, cfg.int_value("batch_size")))
        epochs = cfg.int_value("epochs")
        notes: list[str] = []
        saves = _occurrences(cfg.int_value("save_every"), str(cfg.get("save_every_unit")), epochs, steps_per_epoch)
        if saves is None:
            saves = 1
            notes.append(
                f"saves every {cfg.get('save_every')} {str(cfg.get('save_every_unit')).lower()}(s): the count depends on speed; counted once"
            )
        backups = _occurrences(
            cfg.int_value("backup_after"), str(cfg.get("backup_after_unit")), epochs, steps_per_epoch
        )
        if backups is None:
            backups = 1
            if not cfg.flag("rolling_backup"):
                notes.append(
                    f"backups every {cfg.get('backup_after')} {str(cfg.get('backup_after_unit')).lower()}(s) are kept: "
                    "the count depends on speed; counted once (turn on Rolling Backup to cap them)"
                )
        if cfg.flag("backup_before_save"):
            backups += saves
        if cfg.flag("rolling_backup"):
            backups = min(backups, cfg.int_value("rolling_backup_count"))
        workspace = cfg.resolve(str(cfg.get("workspace_dir")))
        destination = cfg.resolve(str(cfg.get("output_model_destination")))
        needs = [
            (workspace / "save", saves * save_bytes, f"{saves} save(s) x {human_bytes(save_bytes)} ({out_dtype})"),
            (
                workspace / "backup",
                backups * backup_bytes,
                f"{backups} backup(s) x at least {human_bytes(backup_bytes)}",
            ),
            (destination.parent, save_bytes, f"the final model {destination.name} ({human_bytes(save_bytes)})"),
        ]
        margin = int(data_table("training")["disk"]["margin_bytes"])
        per_fs: dict[str, dict[str, Any]] = {}
        for path, need, what in needs:
            if need <= 0:
                continue
            usage = ctx.probe.disk_usage(path)
            if usage is None:
                notes.append(f"cannot measure free space at {path}")
                continue
            key = f"{usage.device or ''}:{usage.mountpoint or usage.path}"
            fs = per_fs.setdefault(
                key, {"mount": usage.mountpoint or usage.path, "free": usage.free_bytes, "need": 0, "what": []}
            )
            fs["need"] += need
            fs["what"].append(what)
        short = {k: v for k, v in per_fs.items() if v["need"] + margin > v["free"]}
        details = [
            f"{v['mount']}: needs {human_bytes(v['need'])} ({'; '.join(v['what'])}), {human_bytes(v['free'])} free"
            for v in per_fs.values()
        ] + notes
        data = {k: {"need_bytes": v["need"], "free_bytes": v["free"], "mount": v["mount"]} for k, v in per_fs.items()}
        if short:
            worst = max(short.values(), key=lambda v: v["need"] - v["free"])
            return CheckResult.fail(
                f"not enough disk on {worst['mount']}: the run writes {human_bytes(worst['need'])}, "
                f"{human_bytes(worst['free'])} free",
                details=tuple(details),
                expected=f"free space for every save and backup plus {human_bytes(margin)} to spare",
                why="OneTrainer stops with a write error when the disk fills, possibly mid-save with a corrupt checkpoint",
                fix=Fix(
                    "save less often (Backup tab: Save after), use bfloat16 output, or move the workspace to a bigger disk",
                    (_train_cmd(ctx, "save_every_unit=NEVER"), f"df -h {workspace.parent}"),
                ),
                data=data,
            )
        total = sum(v["need"] for v in per_fs.values())
        return CheckResult.ok(
            f"the run writes about {human_bytes(total)}; enough free space", details=tuple(details), data=data
        )


class Workspace(Check):
    id = "config.workspace"
    title = "Workspace and cache folders"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        notes: list[str] = []
        workspace = cfg.resolve(str(cfg.get("workspace_dir")))
        cache = cfg.resolve(str(cfg.get("cache_dir")))
        if workspace.is_dir() and any(workspace.iterdir()):
            if cfg.flag("continue_last_backup"):
                notes.append(f"workspace {workspace} holds an earlier run (continued: continue_last_backup is on)")
            else:
                notes.append(f"workspace {workspace} is not empty: a new run wants an empty workspace")
        if cache.is_dir() and any(cache.iterdir()):
            if cfg.flag("clear_cache_before_training"):
                notes.append(f"cache {cache} holds an earlier cache; it is cleared before training")
            else:
                notes.append(
                    f"cache {cache} is reused (clear_cache_before_training off): use a new cache folder when data or settings changed"
                )
        if notes:
            # Information, not a problem: the guide recommends it, but reuse can be intended.
            return CheckResult.ok("; ".join(notes), details=tuple(notes))
        return CheckResult.ok(f"workspace {workspace} and cache {cache} are new or empty")


class Ema(Check):
    id = "config.ema"
    title = "EMA"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = _cfg(ctx)
        ema = str(cfg.get("ema"))
        if ema != "OFF" and cfg.is_sdxl:
            return CheckResult.ok(
                f"EMA {ema} on SDXL: the guide finds no benefit for SDXL (useful for SD 1.5); it costs memory"
            )
        return CheckResult.ok(f"EMA {ema}")


CHECKS = [
    ConfigFile,
    ModelType,
    VaeOverride,
    OutputDtype,
    TrainDtype,
    TextEncoderLr,
    FusedBackPass,
    RegBalancing,
    ConceptPaths,
    Masks,
    Captions,
    Disk,
    Workspace,
    Ema,
]
