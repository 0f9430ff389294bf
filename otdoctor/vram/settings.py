"""The settings of a OneTrainer config that decide its VRAM, read as OneTrainer reads them.

Part sections (`unet`, `text_encoder`, ...) carry `train`, `weight_dtype`, `gradient_checkpointing`,
`offload_fraction` and `activation_offloading` since config version 11; older exports keep a global
`weight_dtype` (a part's "NONE" means it), a global `gradient_checkpointing` ("ON", "OFF",
"CPU_OFFLOADED") and `layer_offload_fraction`, which OneTrainer's migrations fan out per part. Part
defaults are TrainModelPartConfig's. Anything that cannot be a setting is a UserError naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.onetrainer.config import DEFAULTS, parse_resolution

METHODS = ("FINE_TUNE", "LORA", "EMBEDDING")


def table() -> dict[str, Any]:
    return load_table("vram.toml")


@dataclass(frozen=True)
class Part:
    name: str  # the config section: unet, text_encoder, text_encoder_2, vae
    train: bool
    weight_dtype: str
    checkpointing: bool
    offload_fraction: float
    activation_offloading: bool
    on_gpu: bool  # during a training step

    @property
    def weight_bytes(self) -> float:
        return float(table()["dtype_bytes"][self.weight_dtype])


@dataclass(frozen=True)
class Settings:
    family: str  # a key of vram_parts.toml's [family]
    method: str
    parts: tuple[Part, ...]
    activation_bytes: int  # per element, from train_dtype
    batch_size: int
    latent_pixels: int  # of the largest resolution
    optimizer: str
    optimizer_options: Mapping[str, Any]
    fused_back_pass: bool
    ema: str  # OFF, GPU, CPU
    lora_rank: int
    lora_weight_bytes: float
    gradient_accumulation_steps: int

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)


def _bad(key: str, value: Any, expected: str) -> UserError:
    return UserError(f"config key {key} is {value!r}: expected {expected}", exit_code=2)


def lookup(raw: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """A dotted key of the raw config, else DEFAULTS, else DEFAULT."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return DEFAULTS.get(key, default)
        node = node[part]
    return node


def _positive_int(raw: Mapping[str, Any], key: str) -> int:
    value = lookup(raw, key, 1)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(key, value, "a whole number >= 1")
    try:
        number = float(value)
    except ValueError:
        raise _bad(key, value, "a whole number >= 1") from None
    if not math.isfinite(number) or number < 1 or number != int(number) or number > 1e6:
        raise _bad(key, value, "a whole number >= 1")
    return int(number)


def _fraction(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(key, value, "a number from 0 to 1")
    try:
        number = float(value)
    except ValueError:
        raise _bad(key, value, "a number from 0 to 1") from None
    if not 0 <= number <= 1:
        raise _bad(key, value, "a number from 0 to 1")
    return number


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _bad(key, value, "true or false")


def _enum(raw: Mapping[str, Any], key: str, choices: Mapping[str, Any] | tuple[str, ...], default: str) -> str:
    value = lookup(raw, key, default)
    if not isinstance(value, str) or value not in choices:
        shown = ", ".join(list(choices)[:8]) + (", ..." if len(choices) > 8 else "")
        raise _bad(key, value, f"one of {shown}")
    return value


def family_of(model_type: Any) -> str:
    parts = load_table("vram_parts.toml")["family"]
    if isinstance(model_type, str):
        for name, family in parts.items():
            if any(model_type.startswith(prefix) for prefix in family["model_types"]):
                return str(name)
    known = ", ".join(f"{f['label']} ({'/'.join(f['model_types'])}*)" for f in parts.values() if f["model_types"])
    raise UserError(
        f"otdoctor has no memory model for model_type {model_type!r}; it knows {known}",
        exit_code=2,
    )


def _weight_dtype(raw: Mapping[str, Any], part: str) -> str:
    """A part's weight dtype: its own, or (exports before version 11) the global one it names with NONE."""
    dtypes = table()["dtype_bytes"]
    own = lookup(raw, f"{part}.weight_dtype", None)
    if own is None:
        own = raw.get(f"{part}_weight_dtype")  # version-0 flat keys
    if own in (None, "NONE"):
        own = raw.get("weight_dtype", "FLOAT_32")
    if not isinstance(own, str) or own not in dtypes:
        raise _bad(f"{part}.weight_dtype", own, "one of " + ", ".join(dtypes))
    return own


def _legacy_checkpointing(raw: Mapping[str, Any]) -> tuple[bool, bool, float]:
    """(checkpointing, activation offloading, offload fraction) from the pre-11 global keys."""
    legacy = raw.get("gradient_checkpointing", "ON")
    if isinstance(legacy, bool):
        legacy = "ON" if legacy else "OFF"
    if legacy not in ("ON", "OFF", "CPU_OFFLOADED"):
        raise _bad("gradient_checkpointing", legacy, "ON, OFF or CPU_OFFLOADED")
    offloaded = legacy == "CPU_OFFLOADED"
    activation = offloaded and _flag(raw.get("enable_activation_offloading", True), "enable_activation_offloading")
    fraction = _fraction(raw.get("layer_offload_fraction", 0.0), "layer_offload_fraction") if offloaded else 0.0
    return legacy != "OFF", activation, fraction


def _on_gpu(name: str, train: bool, raw: Mapping[str, Any], method: str) -> bool:
    """StableDiffusion(XL)*Setup.setup_train_device: the VAE only without latent caching; a text encoder
    when trained, for embedding training, or without latent caching."""
    caching = _flag(lookup(raw, "latent_caching", True), "latent_caching")
    if name == "unet":
        return True
    if name == "vae":
        return not caching
    return train or method == "EMBEDDING" or not caching


def _part(raw: Mapping[str, Any], name: str, method: str) -> Part:
    section = raw.get(name)
    section = section if isinstance(section, Mapping) else {}
    legacy = _legacy_checkpointing(raw)
    train = name != "vae" and _flag(section.get("train", True), f"{name}.train")
    return Part(
        name=name,
        train=train and method != "EMBEDDING",
        weight_dtype=_weight_dtype(raw, name),
        checkpointing=_flag(section.get("gradient_checkpointing", legacy[0]), f"{name}.gradient_checkpointing"),
        offload_fraction=_fraction(section.get("offload_fraction", legacy[2]), f"{name}.offload_fraction"),
        activation_offloading=_flag(section.get("activation_offloading", legacy[1]), f"{name}.activation_offloading"),
        on_gpu=_on_gpu(name, train, raw, method),
    )


def latent_pixels(resolution: Any) -> int:
    """Latent pixels of the largest image: "1024" -> 128x128, "768,1024" -> 128x128, "1024x768" -> 128x96."""
    text = str(resolution) if isinstance(resolution, str | int) and not isinstance(resolution, bool) else None
    numbers = parse_resolution(text) if text is not None else ()
    scale = int(table()["overhead"]["latent_factor"])
    if not numbers or min(numbers) < scale or max(numbers) > 16384:
        raise _bad("resolution", resolution, 'pixels such as "1024", "768,1024" or "1024x768"')
    if "x" in str(resolution).lower() and len(numbers) == 2:
        return (numbers[0] // scale) * (numbers[1] // scale)
    return (max(numbers) // scale) ** 2


def read_settings(raw: Mapping[str, Any]) -> Settings:
    family = family_of(lookup(raw, "model_type"))
    method = _enum(raw, "training_method", METHODS, "FINE_TUNE")
    names = load_table("vram_parts.toml")["family"][family]["parts"]
    optimizer = lookup(raw, "optimizer.optimizer", "ADAMW")
    if not isinstance(optimizer, str) or not optimizer:
        raise _bad("optimizer.optimizer", optimizer, "an optimizer name such as ADAFACTOR")
    section = raw.get("optimizer")
    options: Mapping[str, Any] = section if isinstance(section, Mapping) else {}
    lora_dtype = lookup(raw, "lora_weight_dtype", "FLOAT_32")
    if lora_dtype not in table()["dtype_bytes"]:
        raise _bad("lora_weight_dtype", lora_dtype, "one of " + ", ".join(table()["dtype_bytes"]))
    return Settings(
        family=family,
        method=method,
        parts=tuple(_part(raw, name, method) for name in names),
        activation_bytes=int(table()["activation_bytes"][_enum(raw, "train_dtype", table()["activation_bytes"], "")]),
        batch_size=_positive_int(raw, "batch_size"),
        latent_pixels=latent_pixels(lookup(raw, "resolution", "512")),
        optimizer=optimizer,
        optimizer_options=options,
        fused_back_pass=_flag(lookup(raw, "optimizer.fused_back_pass", False), "optimizer.fused_back_pass"),
        ema=_enum(raw, "ema", ("OFF", "GPU", "CPU"), "OFF"),
        lora_rank=_positive_int(raw, "lora_rank"),
        lora_weight_bytes=float(table()["dtype_bytes"][lora_dtype]),
        gradient_accumulation_steps=_positive_int(raw, "gradient_accumulation_steps"),
    )
