"""Finding a OneTrainer checkout and reading the facts its launchers hold."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from otdoctor.data import load_table
from otdoctor.probe.files import denied, refusing_folder

if TYPE_CHECKING:
    from otdoctor.probe import Probe

# Files whose presence makes a folder a OneTrainer checkout (the Linux and Windows launchers).
LAUNCHERS = ("install.sh", "start-ui.sh", "lib.include.sh")
MARKERS = ("scripts/train.py", "modules")


@dataclass(frozen=True)
class Located:
    path: Path | None
    source: str | None  # how it was found: "--ot-dir", "OT_DIR", "current folder", "~/Projects/OneTrainer"
    tried: tuple[str, ...] = ()  # every place looked at, for the "not found" finding
    unreadable: str | None = None  # the folder that refused this user, when the one named cannot be read


def looks_like_onetrainer(path: Path) -> bool:
    try:
        return (
            path.is_dir()
            and (path / "scripts" / "train.py").is_file()
            and any((path / name).is_file() for name in LAUNCHERS)
        )
    except (OSError, ValueError):  # another user's folder: not one this user can run OneTrainer from
        return False


def find_checkout(probe: Probe, explicit: Path | None = None) -> Located:
    """Where OneTrainer is, as the probe's environment, current folder and home say."""
    return locate(explicit, probe.env, probe.cwd, probe.home)


def locate(explicit: Path | None, env: Mapping[str, str], cwd: Path, home: Path) -> Located:
    """--ot-dir, then $OT_DIR, then the current folder, then the guide's places."""
    if explicit is not None:
        path = explicit.expanduser()
        refused = refusing_folder(path)
        if refused is not None:
            return Located(None, "--ot-dir", (str(explicit),), unreadable=refused)
        return Located(path.resolve(), "--ot-dir", (str(explicit),))
    tried: list[str] = []
    closed: tuple[str, str] | None = None
    candidates: list[tuple[Path, str]] = []
    if env.get("OT_DIR"):
        candidates.append((Path(env["OT_DIR"]).expanduser(), "OT_DIR"))
    candidates.append((cwd, "current folder"))
    candidates.append((home / "Projects" / "OneTrainer", "~/Projects/OneTrainer"))
    candidates.append((home / "OneTrainer", "~/OneTrainer"))
    for path, source in candidates:
        refused = refusing_folder(path)
        tried.append(str(path) + (f" ({denied(refused)})" if refused else ""))
        if source == "OT_DIR":  # the user said so: take it even when it is broken, and say why later
            if refused is not None:
                return Located(None, source, tuple(tried), unreadable=refused)
            return Located(path.resolve(), source, tuple(tried))
        if refused is None and looks_like_onetrainer(path):
            return Located(path.resolve(), source, tuple(tried))
        # A guide place that exists but shuts this user out (made with sudo) is likely a checkout;
        # a closed folder above it (~/Projects) says nothing about a checkout inside.
        if closed is None and refused == str(path.absolute()) and source != "current folder":
            closed = (source, refused)
    if closed is not None:
        return Located(None, closed[0], tuple(tried), unreadable=closed[1])
    return Located(None, None, tuple(tried))


_ASSIGN = re.compile(r"""^\s*(?:export\s+)?(OT_[A-Z_]+)\s*=\s*["']?([^"'\s#]*)["']?""", re.M)


def launcher_variables(ot_dir: Path) -> dict[str, str]:
    """Plain `OT_X="value"` and `${OT_X:-default}` assignments from lib.include.sh."""
    lib = ot_dir / "lib.include.sh"
    try:
        text = lib.read_text(errors="replace")
    except OSError:
        return {}
    found = {m.group(1): m.group(2) for m in _ASSIGN.finditer(text)}
    # `export OT_X="${OT_X:-value}"` style: take the default.
    for key, value in list(found.items()):
        m = re.match(r"\$\{" + re.escape(key) + r":-([^}]*)\}", value)
        if m:
            found[key] = m.group(1)
    for m in re.finditer(r'(OT_[A-Z_]+)="?\$\{\1:-([^}]*)\}', text):
        found[m.group(1)] = m.group(2)
    return found


def python_range(ot_dir: Path | None) -> tuple[str, str, str]:
    """(minimum, too_high, source): what the checkout's launcher accepts."""
    if ot_dir is not None:
        found = launcher_variables(ot_dir)
        lo, hi = found.get("OT_PYTHON_VERSION_MINIMUM"), found.get("OT_PYTHON_VERSION_TOO_HIGH")
        if lo and hi:
            return lo, hi, str(ot_dir / "lib.include.sh")
    fallback = load_table("python.toml")["fallback_range"]
    return fallback["minimum"], fallback["too_high"], "otdoctor's built-in default"


# scripts/util/version_check.py: `deprecated_ver = (3, 11, 0)`, below which the launcher prints
# "Warning: Deprecated Python version found. Update to 3.11.0 or newer".
VERSION_CHECK = "scripts/util/version_check.py"
_DEPRECATED_VER = re.compile(r"^deprecated_ver\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*(\d+)\s*)?,?\s*\)", re.M)


def recommended_python(ot_dir: Path | None) -> tuple[str, str] | None:
    """(version, source): the Python the checkout's own launcher stops warning about ("3.11.0"), read
    from its version check at run time; None when the checkout has no such line."""
    if ot_dir is None:
        return None
    from otdoctor.probe.files import read_regular_bytes

    path = ot_dir / VERSION_CHECK
    try:
        text = read_regular_bytes(path, 256 * 1024).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    found = _DEPRECATED_VER.search(text)
    if found is None:
        return None
    return ".".join(g for g in found.groups() if g is not None), str(path)
