"""What the config checks share: the loaded config, the `train.py` command that sets a value, the
base model's architecture, and the size of one saved checkpoint.

Every config check requires `config.file` (checks/config.py), which reports the config
`config_facts` picked and any load problem, so the helpers here may assume a loaded config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.safetensors import HeaderError, architecture_of_model_type, detect_architecture, read_header
from otdoctor.data import load_table
from otdoctor.engine.check import Context
from otdoctor.onetrainer.commands import train_line
from otdoctor.onetrainer.config import TrainConfig, config_facts

CONFIG_FILE = "config.file"


def training_table() -> dict[str, Any]:
    return load_table("training.toml")


def train_config(ctx: Context) -> TrainConfig:
    cfg = config_facts(ctx).config
    assert cfg is not None  # config.file passed, so there is one
    return cfg


def train_cmd(ctx: Context, *values: str) -> str:
    """The line to paste that runs this config with VALUES set (from any folder)."""
    return train_line(ctx.ot_dir, ctx.probe.env, ctx.probe.cwd, config_facts(ctx).path, values)


def model_label(model_type: str) -> str:
    return str(training_table()["model_type_labels"].get(model_type, model_type))


# Base model architecture ------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseModel:
    name: str
    path: Path | None  # the local file or folder, when it is one
    architecture: str | None  # SDXL, SD 1.5, SD 2.x, LoRA, embedding, unknown; None = not known here
    how: str  # "read from the checkpoint", "diffusers model_index.json", "known repository"...
    error: str | None = None  # a local file that cannot be read

    @property
    def custom(self) -> bool:
        return self.name not in training_table()["official_base_models"]


_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def _local_base_model(name: str, local: Path) -> BaseModel | None:
    """The base model read from a local file or folder; None when LOCAL is neither."""
    if local.is_file() and local.suffix.lower() in _PICKLE_SUFFIXES:
        # A pickle checkpoint OneTrainer can load; reading it would mean unpickling: not here.
        return BaseModel(name, local, None, f"a {local.suffix} file, not read")
    if local.is_file():
        try:
            header = read_header(local)
        except (HeaderError, OSError) as exc:
            return BaseModel(name, local, None, "the checkpoint", error=str(exc))
        return BaseModel(name, local, detect_architecture(header.tensors), "read from the checkpoint's tensors")
    if local.is_dir():
        return BaseModel(name, local, _diffusers_architecture(local), "the diffusers folder's model_index.json")
    return None


def _find_base_model(cfg: TrainConfig) -> BaseModel:
    name = cfg.base_model_name
    local = cfg.resolve(name) if name else None
    found = _local_base_model(name, local) if local is not None else None
    if found is not None:
        return found
    known = training_table()["hub_architectures"].get(name)
    if known:
        return BaseModel(name, None, known, "a known Hugging Face repository")
    looks_local = name.startswith(("/", ".", "~")) or name.endswith((".safetensors", ".ckpt", ".pt"))
    if looks_local:
        return BaseModel(name, local, None, "the checkpoint", error=f"{local} does not exist")
    return BaseModel(name, None, None, "a Hugging Face repository otdoctor does not know")


def base_model(ctx: Context) -> BaseModel:
    return ctx.memo("config.base_model", lambda: _find_base_model(train_config(ctx)))


def _diffusers_architecture(folder: Path) -> str | None:
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cls = str(index.get("_class_name", ""))
    if "XL" in cls:
        return "SDXL"
    if cls.startswith("StableDiffusion"):
        try:
            te = json.loads((folder / "text_encoder" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "SD 1.5"
        sd2_width = training_table()["diffusers"]["sd2_text_encoder_hidden_size"]
        return "SD 2.x" if te.get("hidden_size") == sd2_width else "SD 1.5"
    return None


# Checkpoint sizes -------------------------------------------------------------------------------
def _size_architecture(ctx: Context, cfg: TrainConfig) -> str | None:
    """What the saves will hold: the base model's real architecture when known, else model_type's."""
    arch = base_model(ctx).architecture
    if arch in training_table()["checkpoint_parameters"]:
        return arch
    return architecture_of_model_type(cfg.model_type)


def checkpoint_bytes(ctx: Context, cfg: TrainConfig, dtype: str) -> int | None:
    """One save of this config in DTYPE; None when otdoctor has no figure for it."""
    table = training_table()
    arch = _size_architecture(ctx, cfg)
    per_weight = table["dtype_bytes"].get(dtype)
    if arch is None or per_weight is None:
        return None
    if cfg.training_method == "LORA":
        params = table["lora_parameters_per_rank"].get(arch, 0) * cfg.int_value("lora_rank")
    elif cfg.training_method == "EMBEDDING":
        return int(table["embedding"]["save_bytes"])
    else:
        params = table["checkpoint_parameters"].get(arch)
        if params is None:
            return None
    return int(params * per_weight)
