"""Write tiny random-weight Stable Diffusion base models that OneTrainer trains on a CPU in seconds.

    venv/bin/python scripts/make_tiny_model.py OUT_DIR [--layout sd15|sdxl|both] [--single-file --ot-dir DIR]

Run it with OneTrainer's venv (it needs torch, diffusers and transformers). Nothing is downloaded:
the tokenizer (a byte-level CLIP vocabulary with no merges) and every config are generated here.

The models keep the published layouts' structure, which OneTrainer's single-file conversion
(`ORIGINAL_SINGLE_FILE` output) relies on: SD 1.5 has 4 UNet blocks and a 12-layer CLIP text encoder,
SDXL 3 UNet blocks, a 12-layer and a 32-layer (projected) text encoder; both have `layers_per_block=2`
and a 4-block VAE. Only the widths are tiny. Written as diffusers folders (`OUT_DIR/tiny-sd15`,
`OUT_DIR/tiny-sdxl`); `--single-file` also writes `OUT_DIR/tiny-sd15.safetensors` (and sdxl) with the
original checkpoint key names, converted by the checkout's own converter.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

TOKENS = 77
SPECIALS = ("<|startoftext|>", "<|endoftext|>")
TEXT_WIDTH = 32
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0-255 (in byte order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def write_tokenizer(folder: Path):
    """A CLIP tokenizer over every byte, alone and word-final, plus the two specials; no merges."""
    from transformers import CLIPTokenizer

    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols] + list(SPECIALS))}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(
            tmp, model_max_length=TOKENS, bos_token=SPECIALS[0], eos_token=SPECIALS[1], pad_token=SPECIALS[1]
        )
    tokenizer.save_pretrained(folder)
    return tokenizer


def text_encoder(tokenizer, layers: int, projected: bool, act: str):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=TOKENS,
        projection_dim=TEXT_WIDTH,
        hidden_act=act,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return (CLIPTextModelWithProjection if projected else CLIPTextModel)(config)


def vae(scaling_factor: float):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 32, 32),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def sd15_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=2,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def sdxl_unet():
    from diffusers import UNet2DConditionModel

    time_dim = 8
    return UNet2DConditionModel(
        sample_size=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 2),
        cross_attention_dim=2 * TEXT_WIDTH,
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=TEXT_WIDTH + 6 * time_dim,
        norm_num_groups=8,
    )


def scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER)


def make_sd15(out: Path):
    from diffusers import StableDiffusionPipeline

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = write_tokenizer(Path(tmp))
    pipe = StableDiffusionPipeline(
        vae=vae(0.18215),
        text_encoder=text_encoder(tokenizer, 12, False, "quick_gelu"),
        tokenizer=tokenizer,
        unet=sd15_unet(),
        scheduler=scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return pipe


def make_sdxl(out: Path):
    from diffusers import StableDiffusionXLPipeline

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = write_tokenizer(Path(tmp))
    pipe = StableDiffusionXLPipeline(
        vae=vae(0.13025),
        text_encoder=text_encoder(tokenizer, 12, False, "quick_gelu"),
        text_encoder_2=text_encoder(tokenizer, 32, True, "gelu"),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=sdxl_unet(),
        scheduler=scheduler(),
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return pipe


def single_file(pipe, layout: str, dest: Path, ot_dir: Path) -> None:
    """The original checkpoint layout, by the checkout's own converter (what ORIGINAL_SINGLE_FILE writes)."""
    sys.path.insert(0, str(ot_dir))
    from modules.util.enum.ModelType import ModelType
    from safetensors.torch import save_file

    if layout == "sd15":
        from modules.model.StableDiffusionModel import StableDiffusionModel
        from modules.util.convert.convert_sd_diffusers_to_ckpt import convert_sd_diffusers_to_ckpt

        conversion = StableDiffusionModel(ModelType.STABLE_DIFFUSION_15).checkpoint_diffusers_to_original()
        state = convert_sd_diffusers_to_ckpt(
            ModelType.STABLE_DIFFUSION_15,
            pipe.vae.state_dict(),
            pipe.unet.state_dict(),
            pipe.text_encoder.state_dict(),
            pipe.scheduler,
            conversion,
        )
    else:
        from modules.model.StableDiffusionXLModel import StableDiffusionXLModel
        from modules.util.convert.convert_sdxl_diffusers_to_ckpt import convert_sdxl_diffusers_to_ckpt

        conversion = StableDiffusionXLModel(ModelType.STABLE_DIFFUSION_XL_10_BASE).checkpoint_diffusers_to_original()
        state = convert_sdxl_diffusers_to_ckpt(
            pipe.vae.state_dict(),
            pipe.unet.state_dict(),
            pipe.text_encoder.state_dict(),
            pipe.text_encoder_2.state_dict(),
            pipe.scheduler,
            conversion,
        )
    save_file({k: v.contiguous() for k, v in state.items()}, str(dest))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layout", choices=("sd15", "sdxl", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single-file", action="store_true", help="also write the original checkpoint layout")
    parser.add_argument("--ot-dir", type=Path, help="OneTrainer checkout, for --single-file's converter")
    args = parser.parse_args(argv)
    if args.single_file and not args.ot_dir:
        parser.error("--single-file needs --ot-dir (the checkout's converter writes the original key names)")
    import torch

    layouts = ("sd15", "sdxl") if args.layout == "both" else (args.layout,)
    for layout in layouts:
        torch.manual_seed(args.seed)
        folder = args.out / f"tiny-{layout}"
        pipe = (make_sd15 if layout == "sd15" else make_sdxl)(folder)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"{folder}: {size / 1e6:.1f} MB")
        if args.single_file:
            dest = args.out / f"tiny-{layout}.safetensors"
            single_file(pipe, layout, dest, args.ot_dir.resolve())
            print(f"{dest}: {dest.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
