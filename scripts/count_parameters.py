"""Count what `otdoctor vram` needs to know about each model part, on PyTorch's meta device.

    python scripts/count_parameters.py [--out otdoctor/data/vram_counts.toml] [--family sdxl ...]

Runs in a venv with torch, diffusers and (for the text encoders) transformers; builds every part of
`otdoctor/data/vram_parts.toml` from its published config on the meta device (no weights, no
download) and writes, per part: parameters, the largest parameter, Adafactor's factored state size,
LoRA parameters per rank, parameters inside the blocks OneTrainer checkpoints, and the activation
elements saved for backward (a fixed part plus a part per latent pixel, per sample), measured with
`torch.autograd.graph.saved_tensors_hooks` on a forward at two latent sizes.

Attention is measured as the CUDA kernels OneTrainer uses (flash / memory-efficient SDPA) keep it:
query, key, value, output and a float32 log-sum-exp per query, never the attention matrix.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "otdoctor" / "data"
LATENT_SIDES = (16, 32)  # two latent sizes for the linear fit; a third checks it
CHECK_SIDE = 48
TEXT_TOKENS = 77


def tables() -> tuple[dict[str, Any], dict[str, Any]]:
    parts = tomllib.loads((DATA / "vram_parts.toml").read_text())
    unets = tomllib.loads((DATA / "unet_configs.toml").read_text())
    return parts, unets


# Building parts ---------------------------------------------------------------------------------
def build_part(kind: str, config: dict[str, Any]) -> nn.Module:
    if kind == "unet":
        from diffusers import UNet2DConditionModel

        return UNet2DConditionModel(**config)
    if kind == "autoencoder_kl":
        from diffusers import AutoencoderKL

        return AutoencoderKL(**config)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if kind == "clip_text_projection" else CLIPTextModel
    return cls(CLIPTextConfig(**config))


def checkpoint_block_types(kind: str) -> tuple[type, ...]:
    """The blocks OneTrainer wraps in gradient checkpointing (modules/util/checkpointing_util.py)."""
    if kind == "unet":
        from diffusers.models.attention import BasicTransformerBlock

        return (BasicTransformerBlock,)
    if kind.startswith("clip_text"):
        from transformers.models.clip.modeling_clip import CLIPEncoderLayer

        return (CLIPEncoderLayer,)
    return ()


# Parameters -------------------------------------------------------------------------------------
def _lora_widths(module: nn.Module) -> list[tuple[int, int]]:
    """(down, up) elements per unit of rank of each layer LoRA adapts."""
    widths = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            widths.append((m.in_features, m.out_features))
        elif isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            widths.append((m.in_channels * kh * kw // m.groups, m.out_channels))
    return widths


def _lora_per_rank(module: nn.Module) -> int:
    """LoRA weights per unit of rank over every Linear and Conv2d (OneTrainer's "full" layer preset):
    down (in x rank, or in x kernel for a conv) plus up (rank x out)."""
    return sum(down + up for down, up in _lora_widths(module))


def _factored(shape: torch.Size) -> int:
    """Adafactor's second-moment state of one weight: a row and a column vector over the last two
    dimensions when it has two or more (transformers.optimization.Adafactor), else the full size."""
    if len(shape) < 2:
        return shape.numel()
    rows = torch.Size(shape[:-1]).numel()
    cols = torch.Size(shape[:-2] + shape[-1:]).numel()
    return rows + cols


def parameter_stats(module: nn.Module, blocks: tuple[type, ...]) -> dict[str, int]:
    params = list(module.parameters())
    in_blocks = {id(p) for m in module.modules() if blocks and isinstance(m, blocks) for p in m.parameters()}
    return {
        "parameters": sum(p.numel() for p in params),
        "largest_parameter": max(p.numel() for p in params),
        "adafactor_state": sum(_factored(p.shape) for p in params),
        "vector_parameters": sum(p.numel() for p in params if p.dim() < 2),
        "lora_per_rank": _lora_per_rank(module),
        "lora_largest_per_rank": max((max(w) for w in _lora_widths(module)), default=0),
        "checkpointed_parameters": sum(p.numel() for p in params if id(p) in in_blocks),
        "tensors": len(params),
    }


# Activations ------------------------------------------------------------------------------------
class _FlashLikeAttention(torch.autograd.Function):
    """What flash / memory-efficient attention keeps for backward; values are not computed (meta)."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Flash kernels write the output as (batch, tokens, heads, dim) and return a transposed view,
        # so the reshape after attention is free and the output projection saves this same storage.
        if q.dim() == 4:
            batch, heads, tokens = q.shape[:-1]
            out = q.new_empty((batch, tokens, heads, v.shape[-1])).transpose(1, 2)
        else:
            out = q.new_empty((*q.shape[:-1], v.shape[-1]))
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:  # pragma: no cover - never run
        q, k, v, _out, _lse = ctx.saved_tensors
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)


def _flash_like_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return _FlashLikeAttention.apply(q, k, v)


@contextmanager
def flash_like_attention():
    real = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = _flash_like_sdpa
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = real


def _storage_key(t: torch.Tensor) -> int:
    """One key per storage: meta tensors have no data pointer, but each has its own StorageImpl."""
    storage = t.untyped_storage()
    return storage.data_ptr() if t.device.type != "meta" else storage._cdata


class SavedTensors:
    """Bytes of the tensors autograd keeps for backward during one forward, parameters excluded, each
    storage once, split into what is saved outside the checkpointed blocks, inside each block, and
    the blocks' inputs (what gradient checkpointing keeps instead of the inside)."""

    def __init__(self, module: nn.Module, blocks: tuple[type, ...]) -> None:
        self.seen = {_storage_key(p) for p in module.parameters()}
        self.outside = 0
        self.inside: list[int] = []
        self.block_inputs = 0
        self._current: int | None = None
        self._handles = [
            m.register_forward_pre_hook(self._enter, with_kwargs=True)
            for m in module.modules()
            if isinstance(m, blocks)
        ]
        self._handles += [m.register_forward_hook(self._leave) for m in module.modules() if isinstance(m, blocks)]

    def _new(self, t: torch.Tensor) -> int:
        key = _storage_key(t)
        if key in self.seen:
            return 0
        self.seen.add(key)
        return t.untyped_storage().nbytes()

    def _enter(self, _m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                self.block_inputs += self._new(value)
        self.inside.append(0)
        self._current = len(self.inside) - 1

    def _leave(self, *_: Any) -> None:
        self._current = None

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        size = self._new(t)
        if self._current is None:
            self.outside += size
        else:
            self.inside[self._current] += size
        return t

    def close(self) -> dict[str, int]:
        for h in self._handles:
            h.remove()
        return {
            "outside": self.outside,
            "block_inputs": self.block_inputs,
            "block_total": sum(self.inside),
            "block_max": max(self.inside, default=0),
        }


def unet_inputs(config: dict[str, Any], model: dict[str, Any], side: int, batch: int, device: str, dtype: torch.dtype):
    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, dtype=dtype)

    kwargs: dict[str, Any] = {"encoder_hidden_states": t(batch, model["text_tokens"], config["cross_attention_dim"])}
    if config.get("addition_embed_type") == "text_time":
        kwargs["added_cond_kwargs"] = {"text_embeds": t(batch, model["text_embeds_dim"]), "time_ids": t(batch, 6)}
    sample = t(batch, config["in_channels"], side, side).requires_grad_(True)
    return (sample, torch.full((batch,), 10, device=device)), kwargs


def saved_bytes(module: nn.Module, blocks: tuple[type, ...], args: tuple[Any, ...], kwargs: dict[str, Any]):
    """Run one forward with gradients and return SavedTensors' split (bytes)."""
    tracker = SavedTensors(module, blocks)
    with torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda t: t):
        module(*args, **kwargs)
    return tracker.close()


def unet_activations(module: nn.Module, config: dict[str, Any], model: dict[str, Any], dtype: torch.dtype):
    """Saved elements per sample: fixed + per latent pixel, fitted at two sides and checked at a third."""
    blocks = checkpoint_block_types("unet")
    elem = torch.tensor([], dtype=dtype).element_size()
    runs = {}
    for side in (*LATENT_SIDES, CHECK_SIDE):
        args, kwargs = unet_inputs(config, model, side, 1, "meta", dtype)
        with flash_like_attention():
            runs[side] = saved_bytes(module, blocks, args, kwargs)
    a, b = LATENT_SIDES
    out: dict[str, float] = {}
    for key in runs[a]:
        per_pixel = (runs[b][key] - runs[a][key]) / (b * b - a * a) / elem
        fixed = runs[a][key] / elem - per_pixel * a * a
        predicted = fixed + per_pixel * CHECK_SIDE**2
        if abs(predicted * elem - runs[CHECK_SIDE][key]) > 0.01 * max(runs[CHECK_SIDE][key], 1):
            raise SystemExit(f"activations of {key} are not linear in latent pixels")
        out[f"{key}_per_pixel"] = per_pixel
        out[f"{key}_fixed"] = round(fixed)
    return out


def text_activations(module: nn.Module, kind: str, dtype: torch.dtype) -> dict[str, float]:
    ids = torch.zeros(1, TEXT_TOKENS, dtype=torch.long, device="meta")
    elem = torch.tensor([], dtype=dtype).element_size()
    with flash_like_attention():
        got = saved_bytes(module, checkpoint_block_types(kind), (ids,), {})
    return {f"{key}_fixed": value // elem for key, value in got.items()}


# Driver -----------------------------------------------------------------------------------------
def count_family(name: str, dtype: torch.dtype = torch.bfloat16, text: bool = True) -> dict[str, dict[str, Any]]:
    parts, unets = tables()
    family = parts["family"][name]
    out: dict[str, dict[str, Any]] = {}
    for section in family["parts"]:
        if section == "unet":
            kind, config = "unet", unets[family["unet"]]["unet"]
        else:
            spec = parts["part"][name][section]
            kind, config = spec["kind"], spec["config"]
            if kind.startswith("clip_text") and not text:
                continue
        with torch.device("meta"):
            module = build_part(kind, config).to(dtype)
        stats: dict[str, Any] = {"kind": kind, **parameter_stats(module, checkpoint_block_types(kind))}
        if kind == "unet":
            stats.update(unet_activations(module, config, unets[family["unet"]], dtype))
        elif kind.startswith("clip_text"):
            stats.update(text_activations(module, kind, dtype))
        out[section] = stats
    return out


def to_toml(counts: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "# Generated by scripts/count_parameters.py from vram_parts.toml and unet_configs.toml: do not edit.",
        f"# torch {torch.__version__}. Activation figures are elements saved for backward per sample, in the",
        "# dtype the step runs in: `<what>_fixed + <what>_per_pixel x latent pixels` (latent = pixels / 8).",
        "",
    ]
    for family, parts in counts.items():
        for section, stats in parts.items():
            lines.append(f"[{family}.{section}]")
            for key, value in stats.items():
                shown = (
                    f'"{value}"' if isinstance(value, str) else (f"{value:.6f}" if isinstance(value, float) else value)
                )
                lines.append(f"{key} = {shown}")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the TOML here (default: stdout)")
    ap.add_argument("--family", action="append", help="only these families (default: sd15 and sdxl)")
    ap.add_argument("--no-text-encoders", action="store_true", help="skip the parts that need transformers")
    args = ap.parse_args(argv)
    families = args.family or ["sd15", "sdxl"]
    counts = {name: count_family(name, text=not args.no_text_encoders) for name in families}
    text = to_toml(counts)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
