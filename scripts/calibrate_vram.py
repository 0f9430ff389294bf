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
import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import count_parameters as cp  # noqa: E402

from otdoctor.vram.model import predict  # noqa: E402
from otdoctor.vram.settings import read_settings  # noqa: E402

CPU_VARIANTS = {
    "adamw": {"optimizer": {"optimizer": "ADAMW"}},
    "adamw-fused": {"optimizer": {"optimizer": "ADAMW", "fused_back_pass": True}},
    "adafactor": {"optimizer": {"optimizer": "ADAFACTOR"}},
    "adafactor-batch2": {"optimizer": {"optimizer": "ADAFACTOR"}, "batch_size": 2},
    "lion-res128": {"optimizer": {"optimizer": "LION"}, "resolution": "128"},
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
    if name == "ADAFACTOR":
        try:
            from transformers.optimization import Adafactor

            return Adafactor(params, lr=1e-5, relative_step=False, scale_parameter=False)
        except ImportError:  # torch's own keeps the same row/column factors
            return torch.optim.Adafactor(params, lr=1e-5)
    if name == "LION":
        return torch.optim.SGD(params, lr=1e-5, momentum=0.9)  # one full-size buffer, as Lion keeps
    return torch.optim.AdamW(params, lr=1e-5)


def _tensor_bytes(state: dict[Any, Any]) -> int:
    return sum(v.nbytes for s in state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.dim() > 0)


def train_step(unet: torch.nn.Module, args: tuple, kwargs: dict, optimizer: str, fused: bool) -> dict[str, int]:
    """One real step; the bytes of each component as it happened."""
    params = [p for p in unet.parameters() if p.requires_grad]
    live = {"now": 0, "max": 0}
    opts: dict[int, torch.optim.Optimizer] = {}
    if fused:  # OneTrainer's fused back pass: step each weight as its gradient lands, then free it
        for p in params:
            opts[id(p)] = make_optimizer(optimizer, [p])

            def hook(p: torch.Tensor) -> None:
                live["max"] = max(live["max"], sum(q.grad.nbytes for q in params if q.grad is not None))
                opts[id(p)].step()
                p.grad = None

            p.register_post_accumulate_grad_hook(hook)
    opt = None if fused else make_optimizer(optimizer, params)
    tracker = cp.SavedTensors(unet, cp.checkpoint_block_types("unet"))
    with torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda t: t):
        out = unet(*args, **kwargs).sample
    saved = tracker.close()
    out.float().pow(2).mean().backward()
    grads = live["max"] if fused else sum(p.grad.nbytes for p in params)
    if opt is not None:
        opt.step()
    states = [o.state for o in opts.values()] if fused else [opt.state]
    return {
        "weights": sum(p.nbytes for p in unet.parameters()),
        "gradients": grads,
        "optimizer state": sum(_tensor_bytes(s) for s in states),
        "activations": saved["outside"] + saved["block_total"],
    }


def cpu_calibration() -> list[dict[str, Any]]:
    _parts, unets = cp.tables()
    model = unets["tiny"]
    with torch.device("meta"):
        meta = cp.build_part("unet", model["unet"])
    counts = {
        "unet": {
            **cp.parameter_stats(meta, cp.checkpoint_block_types("unet")),
            **cp.unet_activations(meta, model["unet"], model, torch.float32),
        }
    }
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
        s = read_settings(raw)
        s = dataclasses.replace(s, family="tiny", parts=(s.part("unet"),))
        p = predict(s, counts)
        torch.manual_seed(0)
        unet = cp.build_part("unet", model["unet"])
        side = int(s.latent_pixels**0.5)
        args, kwargs = cp.unet_inputs(model["unet"], model, side, s.batch_size, "cpu", torch.float32)
        measured = train_step(unet, args, kwargs, s.optimizer, s.fused_back_pass)
        predicted = {
            "weights": p.get("weights"),
            "gradients": p.get("gradients"),
            "optimizer state": p.get("optimizer state"),
            "activations": p.get("activations"),
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


def cuda_calibration(steps: int) -> list[dict[str, Any]]:
    """The guide's SDXL config and its variants on the GPU: the UNet's real step, peak memory."""
    guide = json.loads((REPO / "otdoctor" / "data" / "smoke_guide_sdxl.json").read_text())
    _parts, unets = cp.tables()
    model = unets["sdxl"]
    results = []
    for name, change in CUDA_VARIANTS.items():
        raw = merged(guide, change)
        s = read_settings(raw)
        dtype = torch.bfloat16
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        unet = cp.build_part("unet", model["unet"]).to("cuda", dtype)
        if s.part("unet").checkpointing:
            unet.enable_gradient_checkpointing()
        side = int(s.latent_pixels**0.5)
        for _ in range(steps):
            args, kwargs = cp.unet_inputs(model["unet"], model, side, s.batch_size, "cuda", dtype)
            train_step(unet, args, kwargs, s.optimizer, s.fused_back_pass)
        results.append(
            {
                "variant": name,
                "max_memory_allocated": torch.cuda.max_memory_allocated(),
                "nvidia_smi_used": nvidia_smi_used_bytes(),
                "predicted_peak": predict(s).peak_bytes,
                "note": "UNet only: the text encoder's share is in the prediction",
            }
        )
        del unet
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="small-scale component check on the CPU")
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the small-scale check", file=sys.stderr)
        return 2
    results = cpu_calibration() if args.cpu else cuda_calibration(args.steps)
    print(json.dumps({"torch": torch.__version__, "mode": "cpu" if args.cpu else "cuda", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
