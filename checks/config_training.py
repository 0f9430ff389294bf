"""Config checks on the training settings: text encoder learning rates, fused back pass with
gradient accumulation, and EMA."""

from __future__ import annotations

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix

from .config_common import CONFIG_FILE, train_cmd, train_config, training_table


class TextEncoderLr(Check):
    id = "config.text-encoder-lr"
    title = "Text encoder learning rate below the UNet's"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        if cfg.training_method not in ("FINE_TUNE", "LORA"):
            return CheckResult.ok(f"not used by {cfg.training_method}")
        unet_lr = cfg.part_learning_rate("unet")
        parts = ["text_encoder", "text_encoder_2"] if cfg.is_sdxl else ["text_encoder"]
        trained = [p for p in parts if cfg.flag(f"{p}.train")]
        if not trained:
            return CheckResult.ok("text encoders are not trained")
        return _compare(ctx, unet_lr, [(p, cfg.part_learning_rate(p)) for p in trained])


def _compare(ctx: Context, unet_lr: float | None, rates: list[tuple[str, float | None]]) -> CheckResult:
    set_rates = [(p, lr) for p, lr in rates if lr is not None]
    if unet_lr is None or len(set_rates) < len(rates):  # null everywhere: nothing to compare
        return CheckResult.ok(", ".join(f"{p} {_rate(lr)}" for p, lr in [("unet", unet_lr), *rates]))
    too_high = [(p, lr) for p, lr in set_rates if lr >= unet_lr]
    if too_high:
        return _too_high(ctx, unet_lr, too_high)
    return CheckResult.ok(", ".join(f"{p} {_rate(lr)}" for p, lr in rates) + f" below unet {unet_lr:g}")


def _rate(lr: float | None) -> str:
    return "not set (null)" if lr is None else f"{lr:g}"


def _too_high(ctx: Context, unet_lr: float, too_high: list[tuple[str, float]]) -> CheckResult:
    advice = training_table()["text_encoder_lr"]
    names = ", ".join(f"{p} {lr:g}" for p, lr in too_high)
    suggestion = f"{unet_lr * advice['fraction_of_unet']:.0e}" if unet_lr else advice["fallback"]
    return CheckResult.warn(
        f"text encoder learning rate not lower than the UNet's {unet_lr:g}: {names}",
        expected=f"a text encoder learning rate below {unet_lr:g} (the guide: 3e-06 with the UNet at 1e-05)",
        why='the guide: "if you use the same learning rate it will burn the model"',
        fix=Fix(
            "set `Text Encoder 1 Learning Rate` (and 2) lower in the training tab",
            (train_cmd(ctx, *(f"{p}.learning_rate={suggestion}" for p, _ in too_high)),),
        ),
    )


class FusedBackPass(Check):
    id = "config.fused-back-pass"
    title = "Fused back pass and gradient accumulation"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
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
                    (train_cmd(ctx, "gradient_accumulation_steps=1"),),
                ),
            )
        return CheckResult.ok(f"fused_back_pass {'on' if fused else 'off'}, gradient_accumulation_steps {steps}")


class Ema(Check):
    id = "config.ema"
    title = "EMA"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        ema = str(cfg.get("ema"))
        if ema != "OFF" and cfg.is_sdxl:
            return CheckResult.ok(
                f"EMA {ema} on SDXL: the guide finds no benefit for SDXL (useful for SD 1.5); it costs memory"
            )
        return CheckResult.ok(f"EMA {ema}")
