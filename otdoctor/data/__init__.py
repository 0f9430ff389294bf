"""otdoctor's tables: every threshold, catalog and known fact as TOML (or JSON) beside this file.

One loader for all of them: `load_table("gpu_speed.toml")` parses once per process and returns the same
dict afterwards (callers must not mutate it); `data_file(name)` is the file itself, for the few callers
that need a path (the JSON schema, a guide config handed to a child process).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the 3.10 test pass
    import tomli as tomllib

FOLDER = Path(__file__).resolve().parent


def data_file(name: str) -> Path:
    """The shipped data file NAME (`models.toml`, `report.schema.json`)."""
    return FOLDER / name


@cache
def load_table(name: str) -> dict[str, Any]:
    """The parsed TOML table NAME (`"install.toml"`), read once per process."""
    return tomllib.loads(data_file(name).read_text(encoding="utf-8"))
