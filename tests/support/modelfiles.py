"""Small real checkpoints for tests: safetensors files with SDXL- or SD 1.5-shaped tensor names.

Written with the `safetensors` package (numpy arrays), so they are exactly what a real file looks
like, only smaller: the names and the cross-attention widths are the ones that identify the
architecture; one padding tensor of random data sets the size.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

SDXL_TENSORS = {
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (16, 8),
    "conditioner.embedders.1.model.ln_final.weight": (8,),
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (4, 2048),
    "first_stage_model.decoder.conv_in.weight": (4, 4, 3, 3),
}
SD15_TENSORS = {
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (16, 8),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (4, 768),
    "first_stage_model.decoder.conv_in.weight": (4, 4, 3, 3),
}
SD2_TENSORS = {
    "cond_stage_model.model.ln_final.weight": (8,),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (4, 1024),
}
LORA_TENSORS = {
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 32),
    "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (32, 4),
}
EMBEDDING_TENSORS = {"clip_l": (2, 768), "clip_g": (2, 1280)}

KINDS = {
    "sdxl": SDXL_TENSORS,
    "sd15": SD15_TENSORS,
    "sd2": SD2_TENSORS,
    "lora": LORA_TENSORS,
    "embedding": EMBEDDING_TENSORS,
}


def write_checkpoint(path: Path, kind: str = "sdxl", pad_bytes: int = 0, seed: int = 0) -> Path:
    """A real safetensors file; `pad_bytes` of random fp16 data make it as large as a test needs."""
    rng = np.random.default_rng(seed)
    tensors = {name: rng.standard_normal(shape).astype(np.float16) for name, shape in KINDS[kind].items()}
    if pad_bytes:
        prefix = (
            "model.diffusion_model.out.2.weight" if kind in ("sdxl", "sd15", "sd2") else "lora_te_pad.lora_up.weight"
        )
        tensors[prefix] = rng.integers(0, 2**16, size=pad_bytes // 2, dtype=np.uint16).view(np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_diffusers(folder: Path, kind: str = "sdxl", seed: int = 0) -> Path:
    """A diffusers pipeline folder: model_index.json, model components with config + weights."""
    xl = kind == "sdxl"
    comps = {
        "unet": ("diffusers", "UNet2DConditionModel", "diffusion_pytorch_model.safetensors"),
        "vae": ("diffusers", "AutoencoderKL", "diffusion_pytorch_model.safetensors"),
        "text_encoder": ("transformers", "CLIPTextModel", "model.safetensors"),
        "tokenizer": ("transformers", "CLIPTokenizer", None),
        "scheduler": ("diffusers", "EulerDiscreteScheduler", None),
    }
    if xl:
        comps["text_encoder_2"] = ("transformers", "CLIPTextModelWithProjection", "model.safetensors")
        comps["tokenizer_2"] = ("transformers", "CLIPTokenizer", None)
    index = {
        "_class_name": "StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline",
        "_diffusers_version": "0.27.0",
    }
    rng = np.random.default_rng(seed)
    for name, (lib, cls, weights) in comps.items():
        index[name] = [lib, cls]
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        if weights:
            cfg = {"_class_name": cls}
            if name == "unet":
                cfg["cross_attention_dim"] = 2048 if xl else 768
            (d / "config.json").write_text(json.dumps(cfg))
            save_file({f"{name}.weight": rng.standard_normal((16, 16)).astype(np.float16)}, str(d / weights))
        elif name.startswith("tokenizer"):
            (d / "tokenizer_config.json").write_text("{}")
        else:
            (d / "scheduler_config.json").write_text("{}")
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def write_raw(path: Path, header: bytes, data: bytes = b"") -> Path:
    """A file laid out as safetensors (length, header, data) with any header bytes at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def library_accepts(path: Path) -> bool:
    """Whether the reference implementation, `safetensors.safe_open`, reads the file."""
    try:
        with safe_open(str(path), "np") as fh:
            fh.keys()
    except Exception:  # SafetensorError, and whatever else it raises on a broken file
        return False
    return True
