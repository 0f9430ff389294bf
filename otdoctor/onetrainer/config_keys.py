"""Which keys and `__version`s of a OneTrainer config otdoctor knows (onetrainer_config.toml), and
the warnings for the ones it does not: they may be read wrongly."""

from __future__ import annotations

import json
import math
import re
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


# The values otdoctor computes with ([values] in onetrainer_config.toml) ------------------------------
def as_int(value: Any) -> int | None:
    """`int(value)` as OneTrainer reads it, or None when that fails (text, inf, a 5,000-digit string)."""
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, (int, str)):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def as_float(value: Any) -> float | None:
    """A finite `float(value)`, or None ("SECOND", "inf", a number too large for a float)."""
    if not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def resolution_numbers(text: str) -> list[int] | None:
    """The numbers of a resolution setting ("1024", "768,1024", "832x1216"); None when one is not a number."""
    parts = [p.strip() for p in re.split(r"[,x]", text)]
    if not parts or not all(p.isdigit() and len(p) <= 9 for p in parts):
        return None
    return [int(p) for p in parts]


def dotted(section: Any, key: str) -> tuple[bool, Any]:
    """(present, value) of `key` in `section`, dotted keys (`text.prompt_path`) going into sub-sections."""
    node = section
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def brief(value: Any) -> str:
    """A value as a message shows it: JSON, cut short."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, int) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _path_problem(value: Any) -> str | None:
    text = str(value)
    limits = _TABLE["limits"]
    if "\x00" in text:
        return "holds a NUL character, which no path can"
    if len(text) > limits["path_chars"]:
        return f"is {len(text):,} characters long; a path has at most {limits['path_chars']:,}"
    longest = max((len(p.encode("utf-8", "replace")) for p in text.split("/")), default=0)
    if longest > limits["path_part_bytes"]:
        return f"has a name of {longest} bytes; a file or folder name has at most {limits['path_part_bytes']}"
    return None


def _range_problem(number: float, rule: Mapping[str, Any]) -> str | None:
    low, high = rule.get("min"), rule.get("max")
    if low is not None and number < low:
        return f"is below {low:,}"
    if high is not None and number > high:
        return f"is beyond {high:,}: no real run has that"
    return None


def _value_problem(value: Any, rule: Mapping[str, Any]) -> str | None:
    """Why VALUE breaks RULE ({kind, min, max}), or None when it is fine."""
    kind = rule["kind"]
    if kind == "path":
        return _path_problem(value)
    if kind == "resolution":
        numbers = resolution_numbers(str(value))
        if not numbers:
            return "is not pixels like 1024, 768,1024 or 832x1216"
        bad = [n for n in numbers if _range_problem(n, rule)]
        return f"has {bad[0]} px, outside {rule['min']}..{rule['max']}" if bad else None
    number = as_int(value) if kind == "int" else as_float(value)
    if number is None:
        return "is not a whole number" if kind == "int" else "is not a finite number"
    return _range_problem(number, rule)


def resolution_problem(text: str) -> str | None:
    """Why TEXT is no resolution setting OneTrainer trains at, or None."""
    return _value_problem(text, _TABLE["values"]["resolution"])


def _section_value_problems(section: Any, rules: Mapping[str, Any], where: str) -> list[str]:
    out: list[str] = []
    if not isinstance(section, Mapping):
        return out
    for key, rule in rules.items():
        present, value = dotted(section, key)
        if not present or value is None:
            continue
        if "when" in rule and not dotted(section, rule["when"])[1]:
            continue
        problem = _value_problem(value, rule)
        if problem:
            out.append(f"{where}: {key} {brief(value)} {problem}")
    return out


def value_problems(raw: Mapping[str, Any], concepts: Iterable[Mapping[str, Any]], concepts_where: str) -> list[str]:
    """Every value otdoctor computes with that OneTrainer cannot read or no real run has."""
    out = _section_value_problems(raw, _TABLE["values"], "the config")
    for part in _TABLE["model_parts"]:
        out += _section_value_problems(raw.get(part), _TABLE["part_values"], part)
    for i, c in enumerate(concepts):
        label = f"concept {i + 1} ({brief(c.get('name') or c.get('path') or 'unnamed')}) in {concepts_where}"
        out += _section_value_problems(c, _TABLE["concept_values"], label)
    return out
