"""Synthetic training run, executed by OneTrainer's venv interpreter (never imported by otdoctor).

Builds a diffusers UNet2DConditionModel from a config passed as JSON, with random weights, and
trains it on random latents for N steps with Adafactor set up as the user's guide does (eps 1e-30,
1e-3, clip 1.0, decay -0.8, weight decay 0.01, no relative step, no parameter scaling), timing
every step. Progress goes to stderr as a tqdm bar named `step` (like OneTrainer's); phases and the
final result go to stdout as lines `OTDOCTOR_EVENT {json}` / `OTDOCTOR_RESULT {json}`.

Adafactor: transformers' implementation when transformers is importable (OneTrainer's venv has
it), else the minimal one below (the factored second-moment update of Shazeer & Stern, 2018).
Works on Python 3.8+ with torch >= 1.13 and any diffusers that has UNet2DConditionModel.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def emit(kind, **data):
    sys.stdout.write("OTDOCTOR_%s %s\n" % (kind, json.dumps(data)))
    sys.stdout.flush()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="otdoctor synthetic UNet training")
    p.add_argument("--model-json", required=True, help="model entry: unet config and input shapes")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.add_argument("--steps", type=int, default=20, help="measured steps after warm-up")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--fused-back-pass", action="store_true")
    p.add_argument("--optimizer", choices=["adafactor", "adamw"], default="adafactor")
    p.add_argument("--own-adafactor", action="store_true", help="use the minimal Adafactor even if transformers exists")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--save-dir", default=None, help="folder for saves (periodic and the measured one)")
    p.add_argument("--save-every", type=int, default=0, help="save the weights every N steps")
    p.add_argument("--measure-save", action="store_true", help="time one save after the steps (the final save)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


class MinimalAdafactor:
    """Adafactor without relative step or parameter scaling, as OneTrainer's guide configures it."""

    def __init__(self, params, lr, eps=(1e-30, 1e-3), clip_threshold=1.0, decay_rate=-0.8, weight_decay=0.0):
        import torch

        self.torch = torch
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.eps1, self.clip, self.decay, self.wd = lr, eps[0], clip_threshold, decay_rate, weight_decay
        self.state = {}

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    def step_param(self, p):
        torch = self.torch
        if p.grad is None:
            return
        g = p.grad.float()
        st = self.state.get(p)
        factored = g.dim() >= 2
        if st is None:
            st = {"step": 0}
            if factored:
                st["row"] = torch.zeros(g.shape[:-1], device=g.device)
                st["col"] = torch.zeros(g.shape[:-2] + g.shape[-1:], device=g.device)
            else:
                st["v"] = torch.zeros_like(g)
            self.state[p] = st
        st["step"] += 1
        beta2 = 1.0 - math.pow(st["step"], self.decay)
        sq = g * g + self.eps1
        if factored:
            st["row"].mul_(beta2).add_(sq.mean(dim=-1), alpha=1.0 - beta2)
            st["col"].mul_(beta2).add_(sq.mean(dim=-2), alpha=1.0 - beta2)
            r = (st["row"] / st["row"].mean(dim=-1, keepdim=True)).rsqrt().unsqueeze(-1)
            c = st["col"].unsqueeze(-2).rsqrt()
            update = r * c * g
        else:
            st["v"].mul_(beta2).add_(sq, alpha=1.0 - beta2)
            update = st["v"].rsqrt() * g
        rms = update.pow(2).mean().sqrt().item() if update.numel() else 0.0
        update.div_(max(1.0, rms / self.clip))
        with torch.no_grad():
            if self.wd:
                p.mul_(1.0 - self.wd * self.lr)
            p.add_((-self.lr * update).to(p.dtype))

    def step(self):
        for p in self.params:
            self.step_param(p)


def pick_device(requested, torch):
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def build_unet(model, args, device, dtype, torch):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**model["unet"])
    unet.to(device=device)
    if dtype != torch.float32:
        unet.to(dtype=dtype)
    unet.train()
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet


def transformers_adafactor(unet, lr):
    """The guide's Adafactor from transformers, or None when transformers is missing or too old."""
    try:
        from transformers.optimization import Adafactor

        return Adafactor(
            unet.parameters(),
            lr=lr,
            eps=(1e-30, 1e-3),
            clip_threshold=1.0,
            decay_rate=-0.8,
            weight_decay=0.01,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
        )
    except Exception:
        return None


def make_optimizer(unet, args, torch):
    """(optimizer, which implementation)."""
    if args.optimizer == "adamw":
        return torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01), "torch.optim.AdamW"
    opt = None if args.own_adafactor else transformers_adafactor(unet, args.lr)
    if opt is not None:
        return opt, "transformers.optimization.Adafactor"
    return MinimalAdafactor(unet.parameters(), lr=args.lr, weight_decay=0.01), "otdoctor minimal Adafactor"


def fuse_back_pass(unet, opt, optimizer_impl, args):
    """Step each parameter as soon as its gradient is complete and free the gradient: the VRAM
    saving OneTrainer's fused back pass gives. Returns (optimizer, implementation, fused)."""
    step_one = opt.step_param if isinstance(opt, MinimalAdafactor) else None
    if step_one is None:
        opt = MinimalAdafactor(unet.parameters(), lr=args.lr, weight_decay=0.01)
        optimizer_impl = "otdoctor minimal Adafactor (fused back pass)"
        step_one = opt.step_param

    def hook(p):
        step_one(p)
        p.grad = None

    for p in unet.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(hook)
    return opt, optimizer_impl, True


class Trainer:
    """Random batches of the model's input shapes, timed training steps and timed saves."""

    def __init__(self, unet, opt, fused, model, args, device, dtype, torch):
        self.unet, self.opt, self.fused, self.model = unet, opt, fused, model
        self.args, self.device, self.dtype, self.torch = args, device, dtype, torch
        self.side = args.resolution // int(model.get("vae_scale", 8))
        self.channels = int(model.get("latent_channels", 4))
        self.tokens = int(model.get("text_tokens", 77))
        self.cross = int(model["unet"]["cross_attention_dim"])

    def batch(self):
        torch, b, device, dtype, res = self.torch, self.args.batch_size, self.device, self.dtype, self.args.resolution
        latents = torch.randn(b, self.channels, self.side, self.side, device=device, dtype=dtype)
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, 1000, (b,), device=device)
        text = torch.randn(b, self.tokens, self.cross, device=device, dtype=dtype)
        added = None
        if self.model.get("text_embeds_dim"):
            added = {
                "text_embeds": torch.randn(b, int(self.model["text_embeds_dim"]), device=device, dtype=dtype),
                "time_ids": torch.tensor([[res, res, 0, 0, res, res]] * b, device=device, dtype=dtype),
            }
        return latents, noise, timesteps, text, added

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def save(self, path):
        self.sync()
        t0 = time.perf_counter()
        state = {k: v.detach().contiguous().cpu() for k, v in self.unet.state_dict().items()}
        try:
            from safetensors.torch import save_file

            save_file(state, path)
        except ImportError:
            self.torch.save(state, path)
        with open(path, "rb") as fh:  # the bytes must be on disk, as a real save's are at the end
            os.fsync(fh.fileno())
        return os.path.getsize(path), time.perf_counter() - t0

    def step(self):
        """One training step; (seconds, loss)."""
        self.sync()
        t0 = time.perf_counter()
        latents, noise, timesteps, text, added = self.batch()
        noisy = latents + noise  # the scheduler's arithmetic is noise next to the UNet
        kwargs = {"encoder_hidden_states": text}
        if added is not None:
            kwargs["added_cond_kwargs"] = added
        pred = self.unet(noisy, timesteps, **kwargs).sample
        loss = self.torch.nn.functional.mse_loss(pred.float(), noise.float())
        loss.backward()
        if not self.fused:
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        self.sync()
        return time.perf_counter() - t0, float(loss.detach().float().item())


def progress_bar(total):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc="step", file=sys.stderr, mininterval=0, dynamic_ncols=False)
    except ImportError:
        return None


def train(trainer, args):
    """All steps, saving where asked; (seconds per step, losses, saves as (bytes, seconds))."""
    total = args.warmup + args.steps
    bar = progress_bar(total)
    step_s, losses, saves = [], [], []
    for i in range(total):
        # OneTrainer checks `(global_step + 1) % save_every == 0` before each step (TimedActionMixin).
        if args.save_every and args.save_dir and (i + 1) % args.save_every == 0:
            saves.append(trainer.save(os.path.join(args.save_dir, "save-%06d.safetensors" % (i + 1))))
        seconds, loss = trainer.step()
        step_s.append(seconds)
        losses.append(loss)
        if bar is not None:
            bar.set_postfix(loss="%.4f" % losses[-1], refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()
    return step_s, losses, saves


def peak_memory(device, torch):
    """(peak bytes, what they are, device name)."""
    if device == "cuda":
        return int(torch.cuda.max_memory_reserved()), "torch CUDA reserved", torch.cuda.get_device_name(0)
    import resource

    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    return peak, "process peak RSS", "CPU"


def rate_fields(step_s, warmup):
    """The measured steps (after warm-up) and their rates."""
    measured = step_s[warmup:] or step_s
    srt = sorted(measured)

    def pct(q):
        return srt[min(len(srt) - 1, max(0, int(round(q * (len(srt) - 1)))))]

    return {
        "steps": len(measured),
        "step_s": measured[:5000],
        "its": len(measured) / sum(measured) if sum(measured) > 0 else None,
        "its_low": 1.0 / pct(0.9) if pct(0.9) > 0 else None,
        "its_high": 1.0 / pct(0.1) if pct(0.1) > 0 else None,
    }


def save_fields(measured_save, saves):
    last = measured_save or (saves[-1] if saves else None)
    return {
        "save_bytes": last[0] if last else None,
        "save_s": last[1] if last else None,
        "saves": len(saves),
    }


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    import diffusers
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = json.loads(args.model_json)
    device = pick_device(args.device, torch)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    unet = build_unet(model, args, device, dtype, torch)
    parameters = sum(p.numel() for p in unet.parameters())
    opt, optimizer_impl = make_optimizer(unet, args, torch)
    fused = False
    if args.fused_back_pass and hasattr(torch.Tensor, "register_post_accumulate_grad_hook"):
        opt, optimizer_impl, fused = fuse_back_pass(unet, opt, optimizer_impl, args)
    trainer = Trainer(unet, opt, fused, model, args, device, dtype, torch)

    load_s = time.perf_counter() - t_start
    emit("EVENT", phase="model_ready", load_s=load_s, parameters=parameters, device=device)
    step_s, losses, saves = train(trainer, args)
    measured_save = None
    if args.measure_save and args.save_dir:
        measured_save = trainer.save(os.path.join(args.save_dir, "measure.safetensors"))
        saves.append(measured_save)

    peak, peak_kind, device_name = peak_memory(device, torch)
    fields = dict(
        parameters=parameters,
        device=device,
        device_name=device_name,
        torch=torch.__version__,
        torch_cuda=getattr(torch.version, "cuda", None),
        diffusers=diffusers.__version__,
        optimizer_impl=optimizer_impl,
        fused_back_pass=fused,
        load_s=load_s,
        warmup_steps=min(args.warmup, args.warmup + args.steps),
    )
    fields.update(rate_fields(step_s, args.warmup))
    fields.update(
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
        loss_finite=all(math.isfinite(x) for x in losses),
        peak_memory_bytes=peak,
        peak_memory_kind=peak_kind,
    )
    fields.update(save_fields(measured_save, saves))
    fields["wall_s"] = time.perf_counter() - t_start
    emit("RESULT", **fields)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
