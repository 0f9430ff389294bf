"""Compare `otdoctor vram`'s prediction with real training steps.

    python scripts/calibrate_vram.py            # CUDA: the guide's SDXL config and variants
    python scripts/calibrate_vram.py --cpu      # CPU, small scale: the tiny UNet, component by component

Runs in a venv with torch and diffusers (transformers too for the text encoders on CUDA), from the
otdoctor checkout (it imports otdoctor from here). CUDA mode builds each config's UNet (and a trained
first text encoder) with random weights at the configured dtypes, runs real steps with the configured
optimizer, and prints torch.cuda.max_memory_allocated and nvidia-smi's figure beside the predicted peak.
CPU mode counts the tiny UNet on the meta device exactly as scripts/count_parameters.py counts the
published ones, trains it for one real step per variant and prints the bytes of real parameters,
gradients (the most alive at once with fused back pass), optimizer state and saved activations beside
the model's figures. JSON on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import count_parameters as cp  # noqa: E402

from otdoctor.vram import model as vm  # noqa: E402
from otdoctor.vram.model import predict  # noqa: E402
from otdoctor.vram.settings import read_settings  # noqa: E402

CPU_VARIANTS = {
    "adamw": {"optimizer": {"optimizer": "ADAMW"}},
    "adamw-fused": {"optimizer": {"optimizer": "ADAMW", "fused_back_pass": True}},
    "adafactor": {"optimizer": {"optimizer": "ADAFACTOR"}},
    "adafactor-batch2": {"optimizer": {"optimizer": "ADAFACTOR"}, "batch_size": 2},
    "lion-res128": {"optimizer": {"optimizer": "LION"}, "resolution": "128"},
    "adafactor-checkpointed": {"optimizer": {"optimizer": "ADAFACTOR"}, "unet": {"gradient_checkpointing": True}},
}
CUDA_VARIANTS = {
    "guide": {},
    "no-fused": {"optimizer": {"fused_back_pass": False}},
    "batch2": {"batch_size": 2},
    "res768": {"resolution": "768"},
    "no-checkpointing": {"unet": {"gradient_checkpointing": False}},
    "adamw-fused": {"optimizer": {"optimizer": "ADAMW"}},
    "ema-gpu": {"ema": "GPU"},
}


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out


def make_optimizer(name: str, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if name == "ADAFACTOR":  # OneTrainer's Adafactor is transformers' one (modules/util/create.py)
        try:
            from transformers.optimization import Adafactor
        except ImportError:
            raise SystemExit("Adafactor as OneTrainer runs it needs transformers: pip install transformers") from None
        return Adafactor(params, lr=1e-5, relative_step=False, scale_parameter=False)
    if name == "LION":
        return torch.optim.SGD(params, lr=1e-5, momentum=0.9)  # one full-size buffer, as Lion keeps
    return torch.optim.AdamW(params, lr=1e-5, foreach=False)  # OneTrainer's default: one weight at a time


def _tensor_bytes(state: dict[Any, Any]) -> int:
    return sum(v.nbytes for s in state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.dim() > 0)


@contextlib.contextmanager
def peak_tracker(unet: torch.nn.Module, optimizers: list[Any]) -> Iterator[Callable[[], int]]:
    """The step's peak memory: torch.cuda.max_memory_allocated on CUDA; on the CPU, PyTorch's own
    MemTracker (torch.distributed._tools), which follows every tensor the step allocates."""
    device = next(unet.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        yield torch.cuda.max_memory_allocated
        return
    from torch.distributed._tools.mem_tracker import MemTracker

    mt = MemTracker()
    mt.track_external(unet, *optimizers)
    with mt:
        yield lambda: int(mt.get_tracker_snapshot("peak")[device]["Total"])


def optimizers_for(params: list[torch.nn.Parameter], optimizer: str, fused: bool) -> list[torch.optim.Optimizer]:
    """One optimizer, or with OneTrainer's fused back pass one per weight, stepped by a hook as soon as
    the weight's gradient lands, which then frees the gradient."""
    if not fused:
        return [make_optimizer(optimizer, params)]
    opts = {id(p): make_optimizer(optimizer, [p]) for p in params}

    def hook(p: torch.Tensor) -> None:
        LIVE_GRADS.append(sum(q.grad.nbytes for q in params if q.grad is not None))
        opts[id(p)].step()
        p.grad = None

    for p in params:
        p.register_post_accumulate_grad_hook(hook)
    return list(opts.values())


LIVE_GRADS: list[int] = []  # gradient bytes alive each time the fused hook runs


def _run(
    unet: torch.nn.Module, args: tuple, kwargs: dict, optimizers: list[Any], fused: bool, forward_ctx: Any = None
) -> int:
    """Forward (inside FORWARD_CTX), backward and the optimizer step; the gradient bytes alive at their most."""
    LIVE_GRADS.clear()
    with forward_ctx or contextlib.nullcontext():
        out = unet(*args, **kwargs).sample
    out.float().pow(2).mean().backward()
    del out
    params = [p for p in unet.parameters() if p.requires_grad]
    grads = max(LIVE_GRADS, default=0) if fused else sum(p.grad.nbytes for p in params if p.grad is not None)
    if not fused:
        optimizers[0].step()
        optimizers[0].zero_grad(set_to_none=True)
    return grads


def train_steps(
    unet: torch.nn.Module,
    args: tuple,
    kwargs: dict,
    optimizer: str,
    fused: bool,
    checkpointed: bool = False,
    ema: bool = False,
) -> dict[str, int]:
    """A first real step, measured component by component, then a second one (the optimizer's state
    now exists, as in every later step) measured for its peak. With CHECKPOINTED, the activations are
    what gradient checkpointing keeps, from the real run's split: what is saved outside the checkpointed
    blocks, the blocks' inputs, and the largest block's inside (recomputed in backward)."""
    optimizers = optimizers_for([p for p in unet.parameters() if p.requires_grad], optimizer, fused)
    tracker = cp.SavedTensors(unet, cp.checkpoint_block_types("unet"))
    hooks = torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda t: t)
    grads = _run(unet, args, kwargs, optimizers, fused, hooks)
    saved = tracker.close()
    params = [p for p in unet.parameters() if p.requires_grad]
    with peak_tracker(unet, optimizers) as peak:
        copies = [p.detach().clone() for p in params] if ema else []  # OneTrainer's EMAModuleWrapper
        _run(unet, args, kwargs, optimizers, fused)
        for copy_, p in zip(copies, params, strict=False):
            copy_.lerp_(p.detach(), 0.001)
    kept = saved["block_inputs"] + saved["block_max"] if checkpointed else saved["block_total"]
    return {
        "weights": sum(p.nbytes for p in unet.parameters()),
        "gradients": grads,
        "optimizer state": sum(_tensor_bytes(o.state) for o in optimizers),
        "activations": saved["outside"] + kept,
        "peak": peak(),
    }


def tiny_counts() -> dict[str, dict[str, Any]]:
    """The tiny UNet counted on the meta device, as count_parameters.py counts the published parts."""
    model = cp.tables()[1]["tiny"]
    with torch.device("meta"):
        meta = cp.build_part("unet", model["unet"])
    stats = cp.parameter_stats(meta, cp.checkpoint_block_types("unet"))
    return {"unet": {**stats, **cp.unet_activations(meta, model["unet"], model, torch.float32)}}


def as_tiny(s: Any) -> Any:
    """Settings of the tiny UNet alone (it has no text encoder or VAE)."""
    return dataclasses.replace(s, family="tiny", parts=(s.part("unet"),))


def cpu_calibration() -> list[dict[str, Any]]:
    model = cp.tables()[1]["tiny"]
    counts = tiny_counts()
    base = {
        "model_type": "STABLE_DIFFUSION_15",
        "resolution": "64",
        "train_dtype": "FLOAT_32",
        "unet": {"weight_dtype": "FLOAT_32", "gradient_checkpointing": False},
        "latent_caching": True,
    }
    results = []
    for name, change in CPU_VARIANTS.items():
        raw = merged(base, change)
        s = as_tiny(read_settings(raw))
        p = predict(s, counts)
        torch.manual_seed(0)
        unet = cp.build_part("unet", model["unet"])
        side = int(s.latent_pixels**0.5)
        args, kwargs = cp.unet_inputs(model["unet"], model, side, s.batch_size, "cpu", torch.float32)
        measured = train_steps(unet, args, kwargs, s.optimizer, s.fused_back_pass, s.part("unet").checkpointing)
        items = vm.trained(s, counts)
        predicted = {  # each component at its own size, whichever phase holds the peak
            "weights": sum(c.bytes for c in vm.weights(s, counts)),
            "gradients": vm.gradients(s, items).bytes,
            "optimizer state": vm.optimizer_state(s, items)[0][0].bytes,
            "activations": sum(c.bytes for c in vm.activations(s, counts)),
            "peak": p.peak_bytes - p.get("allocator") - p.get("cuda context"),  # no CUDA on the CPU
        }
        results.append({"variant": name, "measured": measured, "predicted": predicted})
    return results


def nvidia_smi_used_bytes() -> int | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        return int(out.split()[0]) * 1024 * 1024
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def checkpoint_blocks(module: torch.nn.Module) -> None:
    """Gradient checkpointing as OneTrainer applies it: around each checkpointed block only
    (diffusers' own switch checkpoints the ResNet blocks too)."""
    import torch.utils.checkpoint as ckpt

    for block in module.modules():
        if isinstance(block, cp.checkpoint_block_types("unet")):
            inner = block.forward

            def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                return ckpt.checkpoint(_inner, *args, use_reentrant=False, **kwargs)

            block.forward = forward


UNET_ONLY = {"text_encoder": {"train": False}, "text_encoder_2": {"train": False}, "latent_caching": True}
DRY_RESOLUTIONS = {"1024": "64", "768": "48"}  # --dry-run: the tiny UNet at the same latent ratios


def guide_calibration(device: str) -> list[dict[str, Any]]:
    """The guide's SDXL config and its variants, with the text encoders frozen so the GPU holds what
    this script builds (the UNet): the steady-state peak against the prediction. On the CPU
    (--dry-run) the same path runs the tiny UNet at small resolutions, its peak by MemTracker."""
    guide = json.loads((REPO / "otdoctor" / "data" / "smoke_guide_sdxl.json").read_text())
    dry = device == "cpu"
    model = cp.tables()[1]["tiny" if dry else "sdxl"]
    counts = tiny_counts() if dry else None
    results = []
    for name, change in CUDA_VARIANTS.items():
        raw = merged(merged(guide, change), UNET_ONLY)
        if dry:
            raw["resolution"] = DRY_RESOLUTIONS[str(raw["resolution"])]
        s = as_tiny(read_settings(raw)) if dry else read_settings(raw)
        dtype = {4: torch.float32, 2: torch.bfloat16}[int(s.part("unet").weight_bytes)]
        if not dry:
            torch.cuda.empty_cache()
        torch.manual_seed(0)
        unet = cp.build_part("unet", model["unet"]).to(device, dtype)
        if s.part("unet").checkpointing:
            checkpoint_blocks(unet)
        args, kwargs = cp.unet_inputs(model["unet"], model, int(s.latent_pixels**0.5), s.batch_size, device, dtype)
        measured = train_steps(unet, args, kwargs, s.optimizer, s.fused_back_pass, ema=s.ema == "GPU")
        p = predict(s, counts)
        results.append(
            {
                "variant": name,
                "max_memory_allocated": measured["peak"],
                "predicted_allocated": p.peak_bytes - p.get("allocator") - p.get("cuda context"),
                "nvidia_smi_used": None if dry else nvidia_smi_used_bytes(),
                "predicted_total": p.peak_bytes,
            }
        )
        del unet, args, kwargs
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="small-scale component check on the CPU")
    ap.add_argument("--dry-run", action="store_true", help="the GPU calibration's code path on the CPU, tiny UNet")
    args = ap.parse_args(argv)
    if not (args.cpu or args.dry_run) and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu or --dry-run for the small-scale checks", file=sys.stderr)
        return 2
    if args.cpu:
        mode, results = "cpu", cpu_calibration()
    else:
        mode, results = ("dry-run", guide_calibration("cpu")) if args.dry_run else ("cuda", guide_calibration("cuda"))
    print(json.dumps({"torch": torch.__version__, "mode": mode, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
