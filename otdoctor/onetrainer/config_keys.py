"""Which keys and `__version`s of a OneTrainer config otdoctor knows (onetrainer_config.toml), and
the warnings for the ones it does not: they may be read wrongly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from otdoctor.data import load_table

_TABLE = load_table("onetrainer_config.toml")
KNOWN_CONFIG_VERSION = int(_TABLE["config_version"])
KNOWN_CONCEPT_VERSION = int(_TABLE["concept_version"])


def _unknown(section: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    allowed = set(known) | {"__version"}
    return sorted(k for k in section if k not in allowed)


def _version_warning(where: str, section: Mapping[str, Any], expected: int) -> str | None:
    v = section.get("__version")
    if v is None or v == expected:
        return None
    if isinstance(v, int) and v < expected:
        return (
            f"{where} has __version {v} (OneTrainer migrates it to {expected} when it loads; "
            "some keys may be read wrongly)"
        )
    return f"{where} has __version {v!r}; otdoctor knows version {expected}: some keys may be read wrongly"


def _section_warnings(name: str, section: Any, known: Iterable[str]) -> list[str]:
    """A nested section (`unet`, `optimizer`): its unknown keys, then its `__version`."""
    if not isinstance(section, Mapping):
        return []
    out = []
    unknown = _unknown(section, known)
    if unknown:
        out.append(f"unknown key(s) in {name}: {', '.join(unknown)}")
    w = _version_warning(name, section, int(_TABLE["nested_version"]))
    if w:
        out.append(w)
    return out


def config_warnings(raw: Mapping[str, Any]) -> list[str]:
    """Unknown keys and unknown `__version`s, top level and nested sections."""
    out: list[str] = []
    w = _version_warning("the config", raw, KNOWN_CONFIG_VERSION)
    if w:
        out.append(w)
    unknown = _unknown(raw, _TABLE["train_keys"])
    if unknown:
        out.append(f"unknown key(s) in the config: {', '.join(unknown)}")
    for part in _TABLE["model_parts"]:
        out += _section_warnings(part, raw.get(part), _TABLE["model_part_keys"])
    out += _section_warnings("optimizer", raw.get("optimizer"), _TABLE["optimizer_keys"])
    return out


def concept_warnings(concepts: Iterable[Mapping[str, Any]], where: str) -> list[str]:
    out: list[str] = []
    for i, c in enumerate(concepts):
        label = f"concept {i + 1} ({c.get('name') or c.get('path') or 'unnamed'}) in {where}"
        unknown = _unknown(c, _TABLE["concept_keys"])
        for sub, keys in (("image", "concept_image_keys"), ("text", "concept_text_keys")):
            section = c.get(sub)
            if isinstance(section, Mapping):
                unknown += [f"{sub}.{k}" for k in _unknown(section, _TABLE[keys])]
        if unknown:
            out.append(f"unknown key(s) in {label}: {', '.join(unknown)}")
        w = _version_warning(label, c, KNOWN_CONCEPT_VERSION)
        if w:
            out.append(w)
    return out
