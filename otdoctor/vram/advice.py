"""The cheapest changes to a config's own settings that make its step fit in the free VRAM.

Changes (vram.toml's [[change]], cheapest first) are tried in order on a copy of the config, as
scripts/train.py applies `--config-value KEY=VALUE`; each one taken is kept for the next, until the
predicted peak fits. A change with several strengths (batch size, offload fraction, resolution)
takes the mildest one that fits, else its strongest.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otdoctor.vram.model import Prediction, predict
from otdoctor.vram.settings import Settings, lookup, read_settings, table

Values = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Step:
    id: str
    what: str
    values: Values  # (dotted key, value) pairs, as --config-value takes them
    saves_bytes: int
    peak_bytes: int  # predicted after this change and the ones before it

    @property
    def config_values(self) -> tuple[str, ...]:
        return tuple(f"{k}={_shown(v)}" for k, v in self.values)


@dataclass(frozen=True)
class Advice:
    steps: tuple[Step, ...]
    fits: bool  # after all the steps


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def apply(raw: Mapping[str, Any], values: Values) -> dict[str, Any]:
    out = copy.deepcopy(dict(raw))
    for key, value in values:
        node = out
        *parents, leaf = key.split(".")
        for name in parents:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        node[leaf] = value
    return out


def _ema(raw: Mapping[str, Any], s: Settings) -> list[Values]:
    return [(("ema", "CPU"),)] if s.ema == "GPU" else []


def _fused(raw: Mapping[str, Any], s: Settings) -> list[Values]:
    row = table()["optimizer"].get(s.optimizer, {})
    if s.fused_back_pass or not row.get("fused") or s.gradient_accumulation_steps > 1 or s.method != "FINE_TUNE":
        return []
    return [(("optimizer.fused_back_pass", True),)]


def _half_weights(raw: Mapping[str, Any], s: Settings) -> list[Values]:
    full = tuple((f"{p.name}.weight_dtype", "BFLOAT_16") for p in s.parts if p.on_gpu and p.weight_bytes > 2)
    return [full + (("train_dtype", "BFLOAT_16"),)] if full else []


def _checkpointing(raw: Mapping[str, Any], s: Settings) -> list[Values]:
    off = tuple((f"{p.name}.gradient_checkpointing", True) for p in s.parts if p.on_gpu and not p.checkpointing)
    return [off] if off else []


def _adafactor(raw: Mapping[str, Any], s: Settings) -> list[Values]:
    return [] if s.optimizer == "ADAFACTOR" else [(("optimizer.optimizer", "ADAFACTOR"),)]


def _activation_offloading(raw: Mapping[str, Any], s: Settings) -> list[Values]:
    unet = s.part("unet")
    if unet is None or not unet.checkpointing or unet.activation_offloading:
        return []
    return [(("unet.activation_offloading", True),)]


def _batch(raw: Mapping[str, Any], s: Settings) -> list[Values]:
    sizes = []
    n = s.batch_size
    while n > 1:
        n //= 2
        sizes.append(max(n, 1))
    return [(("batch_size", b),) for b in sizes]


def _offload(raw: Mapping[str, Any], s: Settings, change: Mapping[str, Any]) -> list[Values]:
    """Layer offloading; a full fine-tune updates offloaded weights only with fused back pass
    (OneTrainer's docs/RamOffloading.md), so it comes with it or not at all."""
    unet = s.part("unet")
    current = unet.offload_fraction if unet is not None else 1.0
    needs: Values = ()
    if s.method == "FINE_TUNE" and not s.fused_back_pass:
        fused = _fused(raw, s)
        if not fused:
            return []
        needs = fused[0]
    return [(*needs, ("unet.offload_fraction", f)) for f in change["offload_fractions"] if f > current]


def _resolution(raw: Mapping[str, Any], s: Settings, change: Mapping[str, Any]) -> list[Values]:
    side = int(s.latent_pixels**0.5) * int(table()["overhead"]["latent_factor"])
    return [(("resolution", str(r)),) for r in change["resolutions"] if r < side]


_SIMPLE: dict[str, Callable[[Mapping[str, Any], Settings], list[Values]]] = {
    "ema-cpu": _ema,
    "fused-back-pass": _fused,
    "bf16-weights": _half_weights,
    "gradient-checkpointing": _checkpointing,
    "adafactor": _adafactor,
    "activation-offloading": _activation_offloading,
    "batch-size": _batch,
}
_GRADED = {"layer-offloading": _offload, "resolution": _resolution}


def _options(change: Mapping[str, Any], raw: Mapping[str, Any], s: Settings) -> list[Values]:
    if change["id"] in _SIMPLE:
        return _SIMPLE[change["id"]](raw, s)
    return _GRADED[change["id"]](raw, s, change)


def _pick(raw: dict[str, Any], options: list[Values], peak: int, free: int) -> tuple[Values, int] | None:
    """The mildest option that fits, else the strongest that saves anything."""
    tried = []
    for values in options:
        new_peak = predict(read_settings(apply(raw, values))).peak_bytes
        if new_peak <= free:
            return values, new_peak
        tried.append((values, new_peak))
    best = min(tried, key=lambda t: t[1], default=None)
    return best if best is not None and best[1] < peak else None


def advise(raw: Mapping[str, Any], prediction: Prediction, free_bytes: int) -> Advice:
    current = dict(raw)
    peak = prediction.peak_bytes
    steps: list[Step] = []
    for change in table()["change"]:
        if peak <= free_bytes:
            break
        picked = _pick(current, _options(change, current, read_settings(current)), peak, free_bytes)
        if picked is None:
            continue
        values, new_peak = picked
        steps.append(Step(change["id"], change["what"], values, peak - new_peak, new_peak))
        current, peak = apply(current, values), new_peak
    return Advice(tuple(steps), peak <= free_bytes)


__all__ = ["Advice", "Step", "advise", "apply", "lookup"]
