"""Reading OneTrainer training configs: full exports (`"__version": 11`) and partial presets.

`load_config(path, ot_dir)` returns a TrainConfig: the raw dict plus typed accessors for the keys
otdoctor reasons about, with OneTrainer's defaults for missing keys. Concepts come from
`concept_file_name` or inline `concepts`. Malformed JSON is a UserError naming the line and column;
unknown keys and unknown `__version`s (top level and nested sections) become `warnings`.

`config_facts(ctx)` picks the config a run looks at (`--config`, else the UI's last-session state
`training_presets/#.json` in the checkout), loads it once per run and keeps a load error as a value,
so checks can report it instead of aborting the whole run.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.onetrainer.config_json import parse_json
from otdoctor.onetrainer.config_keys import (
    KNOWN_CONFIG_VERSION,
    as_float,
    as_int,
    concept_warnings,
    config_warnings,
    value_problems,
)

if TYPE_CHECKING:
    from otdoctor.engine.check import Context


def data_table(name: str) -> Mapping[str, Any]:
    """A table shipped in `otdoctor/data/`, by its bare name (`onetrainer_config`, `training`)."""
    return load_table(f"{name}.toml")


LAST_USED_NAME = "#.json"  # the UI's last-session state, in training_presets/ (BaseTopBarView)

# OneTrainer's defaults for the keys otdoctor reads (onetrainer_config.toml's [defaults]).
DEFAULTS: dict[str, Any] = dict(load_table("onetrainer_config.toml")["defaults"])


@dataclass(frozen=True)
class Concept:
    raw: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """A concept key, or dotted (`text.prompt_source`, `image.enable_resolution_override`)."""
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

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
        """1.0 when the value is not a finite number (config.file reports it)."""
        value = as_float(self.raw.get("balancing", 1.0))
        return 1.0 if value is None else value

    @property
    def balancing_strategy(self) -> str:
        return str(self.raw.get("balancing_strategy", "REPEATS"))

    @property
    def include_subdirectories(self) -> bool:
        return bool(self.raw.get("include_subdirectories", False))

    @property
    def image_variations(self) -> int:
        return max(1, as_int(self.raw.get("image_variations", 1)) or 1)

    @property
    def counts_for_training(self) -> bool:
        """Disabled and VALIDATION concepts add no training steps."""
        return self.enabled and self.type != "VALIDATION"

    @property
    def prompt_source(self) -> str:
        """ "sample" (a .txt beside each image, the default), "filename" or "concept" (one file)."""
        return str(self.get("text.prompt_source", "sample") or "sample")

    @property
    def prompt_path(self) -> str:
        return str(self.get("text.prompt_path", "") or "")

    @property
    def resolution_override(self) -> str | None:
        if self.get("image.enable_resolution_override", False):
            return str(self.get("image.resolution_override", "") or "") or None
        return None

    @property
    def is_regularisation(self) -> bool:
        """The guide's regularisation concept: named so, or sampled down below one pass per epoch.

        OneTrainer has no concept type for it; the guide makes a STANDARD concept with balancing
        `training images / regularisation images` (0.0072), so a REPEATS balancing below 1 or a
        name/path saying "reg" marks one.
        """
        if not self.counts_for_training:
            return False
        text = f"{self.raw.get('name', '')} {Path(self.path).name}".lower()
        if re.search(r"(^|[^a-z])reg([^a-z]|ulari[sz]ation|$)", text):
            return True
        return self.balancing_strategy == "REPEATS" and self.balancing < 1.0

    def samples_per_epoch(self, n_images: int) -> int:
        """OneTrainer's arithmetic: REPEATS -> floor(n * balancing), SAMPLES -> int(balancing)."""
        if not self.counts_for_training:
            return 0
        if self.balancing_strategy == "SAMPLES":
            return int(self.balancing)
        return int(math.floor(n_images * self.balancing))


@dataclass(frozen=True)
class TrainConfig:
    path: Path | None
    raw: Mapping[str, Any]
    concepts: tuple[Concept, ...] = ()
    concepts_source: str | None = None  # "inline", the concept file's path, or None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    ot_dir: Path | None = None
    # Values OneTrainer cannot read or no real run has (config_keys.value_problems): a config with
    # any is reported by config.file, never computed with.
    problems: tuple[str, ...] = field(default_factory=tuple)

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

    @property
    def base_dir(self) -> Path | None:
        """Where relative paths point (see `config_base`)."""
        return config_base(self.path, self.ot_dir)[0]

    def relative_paths_note(self) -> str | None:
        """One line when enabled concepts have relative paths and no checkout says what they are relative to."""
        base, assumed = config_base(self.path, self.ot_dir)
        relative = [c.name for c in self.concepts if c.enabled and c.path and not _expanded(c.path).is_absolute()]
        if not assumed or not relative:
            return None
        return (
            f"concept path(s) of {', '.join(relative)} are relative: OneTrainer reads them from its own folder, "
            f"and no OneTrainer checkout is known here, so they were taken relative to the config's folder {base} "
            "(pass --ot-dir to use OneTrainer's folder)"
        )

    def resolve(self, value: str, ot_dir: Path | None = None) -> Path:
        """Paths in configs are relative to OneTrainer's folder (the launchers cd there)."""
        return resolve_path(value, ot_dir if ot_dir is not None else self.base_dir)

    # Typed accessors for the rules ------------------------------------------------------------
    def int_value(self, key: str) -> int:
        """The value as OneTrainer's int(); the default when it is none (config.file reports why)."""
        value = as_int(self.get(key))
        return int(DEFAULTS.get(key, 0)) if value is None else value

    def float_value(self, key: str) -> float | None:
        return as_float(self.get(key))

    def flag(self, key: str) -> bool:
        return bool(self.get(key))

    def part_learning_rate(self, part: str) -> float | None:
        """A model part's learning rate; null in the config means the global learning_rate."""
        own = self.float_value(f"{part}.learning_rate")
        return own if own is not None else self.float_value("learning_rate")

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The numbers in `resolution` ("1024", "768,1024", "1024x768"), as OneTrainer splits them."""
        return parse_resolution(str(self.get("resolution")))

    @property
    def enabled_concepts(self) -> tuple[Concept, ...]:
        return tuple(c for c in self.concepts if c.counts_for_training)


def parse_resolution(text: str) -> tuple[int, ...]:
    """Every number in TEXT as OneTrainer splits a resolution; numbers past 9 digits are no size."""
    return tuple(int(x) for x in re.split(r"\D+", text or "") if x and len(x) <= 9)


def _expanded(value: str) -> Path:
    p = Path(value)
    with contextlib.suppress(RuntimeError):  # "~nosuchuser/x": no such home; a folder of that name
        p = p.expanduser()
    return p


def resolve_path(value: str, base: Path | None) -> Path:
    """A config's path: `~` expanded (kept as written when that user does not exist), relative to BASE."""
    p = _expanded(value)
    if not p.is_absolute() and base is not None:
        p = base / p
    return p


def config_base(path: Path | None, ot_dir: Path | None) -> tuple[Path | None, bool]:
    """(the folder a config's relative paths start from, whether it is only assumed). OneTrainer opens them from
    its checkout (the launchers cd there): the known one, else the one holding the config, else (assumed) the
    config's folder."""
    if ot_dir is not None:
        return ot_dir, False
    if path is None:
        return None, True
    from otdoctor.onetrainer.checkout import looks_like_onetrainer

    folder = path.absolute().parent
    for above in (folder, *folder.parents):
        if looks_like_onetrainer(above):
            return above, False
    return folder, True


def run_folder(explicit: Path | None, probe: Any) -> Path | None:
    """OneTrainer's folder as `check` finds it: --ot-dir, $OT_DIR, the current folder, the guide's places."""
    if explicit is not None:
        return explicit
    from otdoctor.onetrainer.checkout import find_checkout

    return find_checkout(probe).path


def _concept_file(raw: Mapping[str, Any], path: Path, ot_dir: Path | None) -> Path | None:
    """Where the concepts are: `concept_file_name` (exports and the UI's #.json write "concepts": null)."""
    name = str(raw.get("concept_file_name") or DEFAULTS["concept_file_name"])
    if value_problems({"concept_file_name": name}, (), ""):
        return None  # not a path: value_problems names it
    return resolve_path(name, config_base(path, ot_dir)[0])


def _read_concepts(cpath: Path, warnings: list[str]) -> list[dict[str, Any]] | None:
    try:
        present = cpath.is_file() or cpath.exists()
    except OSError:
        present = False
    if not present:
        warnings.append(f"concept file {cpath} does not exist")
        return None
    data = parse_json(cpath, "concept file")
    if not isinstance(data, list):
        warnings.append(f"concept file {cpath} is not a JSON list of concepts")
        return None
    items = [c for c in data if isinstance(c, dict)]
    warnings += concept_warnings(items, cpath.name)
    return items


def load_config(path: Path, ot_dir: Path | None = None) -> TrainConfig:
    raw = parse_json(path, "config")
    if not isinstance(raw, dict):
        raise UserError(f"config {path} is a JSON {type(raw).__name__}, not an object of settings", exit_code=2)
    warnings: list[str] = config_warnings(raw)
    items: list[dict[str, Any]] | None = None
    source: str | None = None
    inline = raw.get("concepts")
    if isinstance(inline, list):
        items = [c for c in inline if isinstance(c, dict)]
        source = "inline"
        warnings += concept_warnings(items, "the config")
    else:
        cpath = _concept_file(raw, path, ot_dir)
        items = _read_concepts(cpath, warnings) if cpath is not None else None
        source = str(cpath) if items is not None else None
    where = "the config" if source == "inline" else Path(source).name if source else ""
    problems = value_problems(raw, items or (), where)
    concepts = tuple(Concept(c) for c in items or ())
    return TrainConfig(path, raw, concepts, source, tuple(warnings), ot_dir, tuple(problems))


def unusable(cfg: TrainConfig) -> str:
    """One line for a config with value problems: how many, and the first."""
    more = f" (and {len(cfg.problems) - 1} more)" if len(cfg.problems) > 1 else ""
    return f"config {cfg.path}: {cfg.problems[0].removeprefix('the config: ')}{more}"


def find_last_used(ot_dir: Path | None) -> Path | None:
    """The UI's last-session state: `training_presets/#.json`, rewritten whenever the UI runs."""
    if ot_dir is None:
        return None
    candidate = ot_dir / "training_presets" / LAST_USED_NAME
    try:
        return candidate if candidate.is_file() else None
    except OSError:  # a folder this user may not enter: hand it on, so loading it says why
        return candidate


@dataclass(frozen=True)
class ConfigFacts:
    """Which config a run looks at, and what came of loading it."""

    path: Path | None
    source: str | None  # "--config" or "last-used UI state"
    config: TrainConfig | None = None
    error: str | None = None  # malformed JSON etc., one line with line and column
    problems: tuple[str, ...] = ()  # the values behind `error` when the JSON loaded but is unusable

    @property
    def describe(self) -> str:
        return f"{self.path} ({self.source})" if self.path else "no config"


def config_facts(ctx: Context) -> ConfigFacts:
    """The config for this run, loaded once; `--config` wins over the UI's last-session state."""

    def compute() -> ConfigFacts:
        path = ctx.options.config_path
        source = "--config"
        if path is None:
            path = find_last_used(ctx.ot_dir)
            source = "last-used UI state"
        if path is None:
            return ConfigFacts(None, None)
        try:
            cfg = load_config(path, ctx.ot_dir)
        except UserError as exc:
            return ConfigFacts(path, source, error=exc.message)
        if cfg.problems:
            return ConfigFacts(path, source, error=unusable(cfg), problems=cfg.problems)
        return ConfigFacts(path, source, cfg)

    return ctx.memo("otconfig", compute)


__all__ = [
    "Concept",
    "ConfigFacts",
    "DEFAULTS",
    "KNOWN_CONFIG_VERSION",
    "TrainConfig",
    "config_base",
    "config_facts",
    "data_table",
    "find_last_used",
    "load_config",
    "parse_resolution",
    "resolve_path",
    "run_folder",
    "unusable",
]
