"""Reading OneTrainer training configs: full exports (`"__version": 11`) and partial presets.

`load_config(path)` returns a TrainConfig: the raw dict plus typed accessors for the keys otdoctor
reasons about, with OneTrainer's defaults for missing keys. Concepts come from `concept_file_name`
or inline `concepts`. Malformed JSON is a UserError naming the line and column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from otdoctor.errors import UserError

KNOWN_CONFIG_VERSION = 11

# OneTrainer's defaults for the keys otdoctor reads (TrainConfig.default_values, Aug 2026).
DEFAULTS: dict[str, Any] = {
    "training_method": "FINE_TUNE",
    "model_type": "STABLE_DIFFUSION_15",
    "base_model_name": "",
    "output_dtype": "FLOAT_32",
    "train_dtype": "FLOAT_16",
    "output_model_format": "SAFETENSORS",
    "resolution": "512",
    "batch_size": 1,
    "gradient_accumulation_steps": 1,
    "epochs": 100,
    "learning_rate": 3e-6,
    "aspect_ratio_bucketing": True,
    "latent_caching": True,
    "ema": "OFF",
    "masked_training": False,
    "sample_after": 10,
    "sample_after_unit": "MINUTE",
    "backup_after": 30,
    "backup_after_unit": "MINUTE",
    "save_every": 0,
    "save_every_unit": "NEVER",
    "workspace_dir": "workspace/run",
    "cache_dir": "workspace-cache/run",
    "concept_file_name": "training_concepts/concepts.json",
}


@dataclass(frozen=True)
class Concept:
    raw: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or Path(str(self.raw.get("path", ""))).name or "concept")

    @property
    def path(self) -> str:
        return str(self.raw.get("path", ""))

    @property
    def enabled(self) -> bool:
        return bool(self.raw.get("enabled", True))

    @property
    def type(self) -> str:
        return str(self.raw.get("type", "STANDARD"))

    @property
    def balancing(self) -> float:
        return float(self.raw.get("balancing", 1.0))

    @property
    def balancing_strategy(self) -> str:
        return str(self.raw.get("balancing_strategy", "REPEATS"))

    @property
    def include_subdirectories(self) -> bool:
        return bool(self.raw.get("include_subdirectories", False))

    @property
    def image_variations(self) -> int:
        return int(self.raw.get("image_variations", 1))

    @property
    def counts_for_training(self) -> bool:
        """Disabled and VALIDATION concepts add no training steps."""
        return self.enabled and self.type != "VALIDATION"


@dataclass(frozen=True)
class TrainConfig:
    path: Path | None
    raw: Mapping[str, Any]
    concepts: tuple[Concept, ...] = ()
    concepts_source: str | None = None  # "inline", the concept file's path, or None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_preset(self) -> bool:
        return "__version" not in self.raw

    @property
    def version(self) -> int | None:
        v = self.raw.get("__version")
        return v if isinstance(v, int) else None

    def get(self, key: str, default: Any = None) -> Any:
        """A top-level key, or dotted (`unet.learning_rate`, `optimizer.fused_back_pass`), or the default."""
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return DEFAULTS.get(key, default) if default is None else default
            node = node[part]
        return node

    @property
    def model_type(self) -> str:
        return str(self.get("model_type"))

    @property
    def training_method(self) -> str:
        return str(self.get("training_method"))

    @property
    def is_sdxl(self) -> bool:
        return "XL" in self.model_type

    @property
    def base_model_name(self) -> str:
        return str(self.get("base_model_name") or "")

    def resolve(self, value: str, ot_dir: Path | None) -> Path:
        """Paths in configs are relative to OneTrainer's folder (the launchers cd there)."""
        p = Path(value).expanduser()
        if not p.is_absolute() and ot_dir is not None:
            p = ot_dir / p
        return p


def _parse_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}", exit_code=2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {path}: {exc}", exit_code=2) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", exit_code=2
        ) from None


def load_config(path: Path, ot_dir: Path | None = None) -> TrainConfig:
    raw = _parse_json(path, "config")
    if not isinstance(raw, dict):
        raise UserError(f"config {path} is a JSON {type(raw).__name__}, not an object of settings", exit_code=2)
    warnings: list[str] = []
    version = raw.get("__version")
    if version is not None and version != KNOWN_CONFIG_VERSION:
        warnings.append(
            f"config __version is {version}; otdoctor knows version {KNOWN_CONFIG_VERSION}: some keys may be read wrongly"
        )
    concepts: list[Concept] = []
    source: str | None = None
    inline = raw.get("concepts")
    if isinstance(inline, list):
        concepts = [Concept(c) for c in inline if isinstance(c, dict)]
        source = "inline"
    else:
        name = raw.get("concept_file_name") or (None if raw.get("__version") is None else DEFAULTS["concept_file_name"])
        if name:
            cpath = Path(name).expanduser()
            if not cpath.is_absolute():
                base = ot_dir if ot_dir is not None else path.parent
                cpath = base / cpath
            if cpath.is_file():
                data = _parse_json(cpath, "concept file")
                if isinstance(data, list):
                    concepts = [Concept(c) for c in data if isinstance(c, dict)]
                    source = str(cpath)
                else:
                    warnings.append(f"concept file {cpath} is not a JSON list of concepts")
            else:
                warnings.append(f"concept file {cpath} does not exist")
    return TrainConfig(path, raw, tuple(concepts), source, tuple(warnings))
