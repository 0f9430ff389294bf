"""Training setups as OneTrainer writes them: configs, concept files, images, small checkpoints.

Configs follow OneTrainer's own formats (modules/util/config at 23df383): a full export carries
`"__version": 11` and every nested section its own `__version` (0; concepts 2); presets are partial
dicts without any. Images are real files written by Pillow; checkpoints are real safetensors files
whose tensor names and shapes are those of SDXL or SD 1.5 single-file checkpoints.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PARTS = (
    "unet",
    "prior",
    "transformer",
    "text_encoder",
    "text_encoder_2",
    "text_encoder_3",
    "text_encoder_4",
    "vae",
    "effnet_encoder",
    "decoder",
    "decoder_text_encoder",
    "decoder_vqgan",
)


def part(**kw: Any) -> dict[str, Any]:
    base = {
        "__version": 0,
        "model_name": "",
        "include": True,
        "train": True,
        "stop_training_after": None,
        "stop_training_after_unit": "NEVER",
        "learning_rate": None,
        "weight_dtype": "FLOAT_32",
        "dropout_probability": 0.0,
        "train_embedding": True,
        "attention_mask": False,
        "guidance_scale": 1.0,
        "gradient_checkpointing": True,
        "offload_fraction": 0.0,
        "activation_offloading": False,
    }
    base.update(kw)
    return base


def concept(name: str, path: Path | str, **kw: Any) -> dict[str, Any]:
    """A concept as the UI saves it into training_concepts/concepts.json (ConceptConfig v2)."""
    text = {
        "__version": 0,
        "prompt_source": "sample",
        "prompt_path": "",
        "enable_tag_shuffling": False,
        "tag_delimiter": ",",
        "keep_tags_count": 1,
    }
    text.update(kw.pop("text", {}))
    image = {
        "__version": 0,
        "enable_crop_jitter": True,
        "enable_random_flip": False,
        "enable_resolution_override": False,
        "resolution_override": "512",
    }
    image.update(kw.pop("image", {}))
    c = {
        "__version": 2,
        "image": image,
        "text": text,
        "name": name,
        "path": str(path),
        "seed": -19421,
        "enabled": True,
        "type": "STANDARD",
        "include_subdirectories": False,
        "image_variations": 1,
        "text_variations": 1,
        "balancing": 1.0,
        "balancing_strategy": "REPEATS",
        "loss_weight": 1.0,
        "concept_stats": {},
    }
    c.update(kw)
    return c


def full_config(**kw: Any) -> dict[str, Any]:
    """An exported config (`to_settings_dict`): every section, `"concepts": null`."""
    cfg: dict[str, Any] = {
        "__version": 11,
        "training_method": "FINE_TUNE",
        "model_type": "STABLE_DIFFUSION_15",
        "workspace_dir": "workspace/run",
        "cache_dir": "workspace-cache/run",
        "base_model_name": "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "output_dtype": "FLOAT_32",
        "output_model_format": "SAFETENSORS",
        "output_model_destination": "models/model.safetensors",
        "concept_file_name": "training_concepts/concepts.json",
        "concepts": None,
        "aspect_ratio_bucketing": True,
        "latent_caching": True,
        "clear_cache_before_training": True,
        "learning_rate_scheduler": "CONSTANT",
        "learning_rate": 3e-06,
        "epochs": 100,
        "batch_size": 1,
        "gradient_accumulation_steps": 1,
        "ema": "OFF",
        "train_dtype": "FLOAT_16",
        "fallback_train_dtype": "BFLOAT_16",
        "resolution": "512",
        "masked_training": False,
        "unmasked_probability": 0.1,
        "unmasked_weight": 0.1,
        "optimizer": {"__version": 0, "optimizer": "ADAMW", "fused_back_pass": False, "eps": None},
        "sample_after": 10,
        "sample_after_unit": "MINUTE",
        "backup_after": 30,
        "backup_after_unit": "MINUTE",
        "rolling_backup": False,
        "rolling_backup_count": 3,
        "backup_before_save": True,
        "save_every": 0,
        "save_every_unit": "NEVER",
        "save_skip_first": 0,
        "save_filename_prefix": "",
        "lora_rank": 16,
        "samples": None,
    }
    for name in PARTS:
        cfg[name] = part()
    cfg["text_encoder"] = part(stop_training_after=30, stop_training_after_unit="EPOCH")
    cfg["text_encoder_2"] = part(stop_training_after=30, stop_training_after_unit="EPOCH")
    for key, value in kw.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=4))
    return path


# Images ------------------------------------------------------------------------------------------
def image(
    path: Path,
    size: tuple[int, int] = (64, 64),
    mode: str = "RGB",
    color: Any = None,
    fmt: str | None = None,
    **save: Any,
) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    h = zlib.crc32(str(path).encode())
    if color is None:
        color = {
            "RGB": (h & 255, (h >> 8) & 255, (h >> 16) & 255),
            "L": h & 255,
            "CMYK": (h & 255, 0, 0, 0),
            "RGBA": (h & 255, 10, 20, 255),
            "I;16": h & 0xFFFF,
            "P": h & 255,
        }.get(mode, 0)
    img = Image.new(mode, size, color)
    if mode == "RGB":
        img.putpixel((0, 0), ((h >> 24) & 255, 0, 0))  # files of one colour still differ
    img.save(path, format=fmt, **save)
    return path


def images(folder: Path, n: int, size: tuple[int, int] = (64, 64), ext: str = ".png", start: int = 0) -> list[Path]:
    return [image(folder / f"img{i:05d}{ext}", size) for i in range(start, start + n)]


def png_variants(template: Path, folder: Path, n: int, prefix: str = "reg") -> list[Path]:
    """n distinct PNG files with the template's pixels: each gets its own tEXt chunk before IEND.

    Encoding 5000 full-size images with Pillow takes minutes; these are the same valid PNG made
    unique by metadata, which Pillow reads like any other image.
    """
    data = template.read_bytes()
    iend = data.rindex(b"IEND") - 4
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        body = b"tEXt" + b"Comment\x00" + f"variant {i}".encode()
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        p = folder / f"{prefix}{i:05d}.png"
        p.write_bytes(data[:iend] + chunk + data[iend:])
        out.append(p)
    return out


# Checkpoints -------------------------------------------------------------------------------------
def checkpoint(path: Path, architecture: str) -> Path:
    """A real safetensors file whose tensor names/shapes are those of an SDXL or SD 1.5 checkpoint."""
    import numpy as np
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    if architecture == "SDXL":
        tensors = {
            "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": np.zeros(
                (8, 2048), np.float16
            ),
            "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": np.zeros(
                (4, 768), np.float16
            ),
            "conditioner.embedders.1.model.token_embedding.weight": np.zeros((4, 1280), np.float16),
            "first_stage_model.decoder.conv_in.weight": np.zeros((4, 4, 3, 3), np.float16),
        }
    elif architecture == "SD 1.5":
        tensors = {
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": np.zeros(
                (8, 768), np.float16
            ),
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": np.zeros((4, 768), np.float16),
            "first_stage_model.decoder.conv_in.weight": np.zeros((4, 4, 3, 3), np.float16),
        }
    else:
        raise ValueError(architecture)
    save_file(tensors, str(path))
    return path


# The guide's setup ---------------------------------------------------------------------------------
def guide_setup(root: Path, reg_template_dir: Path | None = None, n_train: int = 36, n_reg: int = 5000) -> Path:
    """The cheat sheet's SDXL person fine-tune: 36 masked 1024px images, 5000 reg images at 0.0072,
    Adafactor with fused back pass, bf16 everywhere, text encoder 1 at 3e-6, save every 15 epochs.

    `root` plays OneTrainer's folder; returns the config path (an exported full config).
    """
    from PIL import Image

    ckpt = checkpoint(root / "models" / "RealVisXL_V4.0.safetensors", "SDXL")
    train_dir = root / "data" / "person"
    for i in range(n_train):
        img = image(train_dir / f"ohwx{i:02d}.png", (1024, 1024))
        Image.new("L", (1024, 1024), 255).save(img.with_name(img.stem + "-masklabel.png"))
    template = root / "data" / "reg-template.png"
    Image.new("RGB", (1024, 1024), (128, 128, 128)).save(template)
    png_variants(template, root / "data" / "reg-man", n_reg)
    template.unlink()
    (root / "data" / "ohwx.txt").write_text("ohwx man\n")
    (root / "data" / "man.txt").write_text("man\n")
    concepts = [
        concept("ohwx man", "data/person", text={"prompt_source": "concept", "prompt_path": "data/ohwx.txt"}),
        concept(
            "regularization man",
            "data/reg-man",
            balancing=0.0072,
            text={"prompt_source": "concept", "prompt_path": "data/man.txt"},
        ),
    ]
    write_json(root / "training_concepts" / "concepts.json", concepts)
    cfg = full_config(
        model_type="STABLE_DIFFUSION_XL_10_BASE",
        base_model_name=str(ckpt),
        output_dtype="BFLOAT_16",
        output_model_destination=str(root / "out" / "model.safetensors"),
        workspace_dir="workspace/person-1",
        cache_dir="workspace-cache/person-1",
        aspect_ratio_bucketing=False,
        learning_rate=1e-05,
        learning_rate_warmup_steps=200.0,
        epochs=200,
        batch_size=1,
        train_dtype="BFLOAT_16",
        resolution="1024",
        masked_training=True,
        unmasked_probability=0.1,
        unmasked_weight=0.6,
        optimizer={
            "optimizer": "ADAFACTOR",
            "eps": 1e-30,
            "eps2": 0.001,
            "clip_threshold": 1.0,
            "decay_rate": -0.8,
            "weight_decay": 0.01,
            "scale_parameter": False,
            "relative_step": False,
            "warmup_init": False,
            "stochastic_rounding": False,
            "fused_back_pass": True,
        },
        unet=part(weight_dtype="BFLOAT_16", learning_rate=1e-05, stop_training_after=10000),
        text_encoder=part(weight_dtype="BFLOAT_16", learning_rate=3e-06, stop_training_after=10000),
        text_encoder_2=part(
            weight_dtype="BFLOAT_16", train=False, stop_training_after=0, stop_training_after_unit="EPOCH"
        ),
        vae=part(weight_dtype="FLOAT_32"),
        backup_after=30,
        backup_after_unit="NEVER",
        rolling_backup=False,
        backup_before_save=False,
        save_every=15,
        save_every_unit="EPOCH",
        save_filename_prefix="tutorial_1",
    )
    return write_json(root / "configs" / "person.json", cfg)


def findings(report_json: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """check id -> status from `otdoctor check --format json`."""
    checks: Iterable[dict[str, Any]] = report_json.get("checks") or report_json.get("outcomes") or []
    return {c["id"]: c["status"] for c in checks if c["id"].startswith(prefix)}


class Scenario:
    """A OneTrainer folder with concepts and a config, diagnosed in-process with a real Probe."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        root.mkdir(parents=True, exist_ok=True)

    def folder(
        self,
        name: str,
        n: int,
        size: tuple[int, int] = (64, 64),
        captions: bool = True,
        masks: bool = False,
        ext: str = ".png",
    ) -> Path:
        from PIL import Image

        folder = self.root / "data" / name
        for p in images(folder, n, size, ext):
            if captions:
                p.with_suffix(".txt").write_text("ohwx man\n")
            if masks:
                Image.new("L", size, 255).save(p.with_name(p.stem + "-masklabel.png"))
        return folder

    def write(self, concepts: list[dict[str, Any]], **cfg: Any) -> Path:
        write_json(self.root / "training_concepts" / "concepts.json", concepts)
        cfg.setdefault("resolution", "64")
        cfg.setdefault("output_dtype", "BFLOAT_16")
        return write_json(self.root / "config.json", full_config(**cfg))

    def run(self, config: Path | None = None, only: tuple[str, ...] = ("config", "dataset")):
        from otdoctor.engine.doctor import make_context, run_doctor
        from otdoctor.probe import Probe

        probe = Probe(env=self.env, cwd=self.root, home=Path(self.env["HOME"]))
        ctx = make_context(probe, self.root, config or self.root / "config.json")
        report = run_doctor(ctx, only)
        return {o.check_id: o.result for o in report.outcomes}
