"""Which Python OneTrainer's launcher will use to build its venv, and whether OneTrainer accepts it.

The launcher runs `${OT_PYTHON_CMD:-python} -m venv venv`. With pyenv initialised, `python` is a
pyenv shim and the version comes from (in pyenv's order) `PYENV_VERSION`, the nearest
`.python-version`, then pyenv's global version; without pyenv it is whatever `python` is on PATH.

The accepted range comes from the checkout's `lib.include.sh`; the exceptions (exactly 3.11.0)
and the deprecation threshold from `otdoctor/data/python.toml`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otdoctor.data import load_table
from otdoctor.onetrainer.checkout import python_range
from otdoctor.probe.python import InterpreterInfo, PyenvInfo

if TYPE_CHECKING:
    from otdoctor.engine.check import Context
    from otdoctor.probe import Probe


def python_data() -> dict[str, Any]:
    return load_table("python.toml")


# Range rules --------------------------------------------------------------------------------------
def parse_version(text: str | None) -> tuple[int, ...] | None:
    """ "3.10.13" -> (3, 10, 13); "3.10" -> (3, 10); non-numeric names ("system", "pypy3.10-7.3") -> None."""
    if not text or not re.fullmatch(r"\d+(\.\d+){0,2}", text.strip()):
        return None
    return tuple(int(x) for x in text.strip().split("."))


@dataclass(frozen=True)
class RangeVerdict:
    accepted: bool
    minimum: str
    too_high: str
    range_source: str  # lib.include.sh path, or "otdoctor's built-in default"
    problem: str | None = None  # why not accepted, one line
    deprecated: bool = False  # accepted, but upstream prints a deprecation warning
    recommended: str = ""  # the version the launcher stops warning at ("3.11.0")
    recommended_source: str = ""  # scripts/util/version_check.py, or otdoctor's table

    @property
    def expected(self) -> str:
        rejected = ", ".join(f"not {v}" for v in python_data().get("rejected", {}))
        return f"Python >={self.minimum},<{self.too_high}" + (f", {rejected}" if rejected else "")

    @property
    def deprecation_note(self) -> str:
        return (
            f'OneTrainer deprecates Python below {self.recommended}: the launcher warns "Deprecated Python '
            f'version found. Update to {self.recommended} or newer" ({self.recommended_source}); it still '
            f"works, and {python_data()['guide_version']} is what the guide installs"
        )


def recommended(ot_dir: Path | None) -> tuple[str, str]:
    """(version, source) the launcher recommends: the checkout's version check, else the table."""
    from otdoctor.onetrainer.checkout import recommended_python

    return recommended_python(ot_dir) or (str(python_data()["deprecated_below"]), "otdoctor's built-in default")


def judge(version: tuple[int, ...], ot_dir: Path | None) -> RangeVerdict:
    """OneTrainer's own test (`scripts/util/version_check.py MIN TOO_HIGH`) plus the rejected list.

    Tuple comparison as upstream: (3, 14, 0) >= (3, 14) is too high; (3, 10, 2) >= (3, 10) is fine.
    A two-part request such as "3.11" means pyenv's newest 3.11.x, so it is not 3.11.0.
    """
    lo, hi, source = python_range(ot_dir)
    lo_t, hi_t = parse_version(lo) or (3, 10), parse_version(hi) or (3, 14)
    shown = ".".join(map(str, version))

    rec, rec_source = recommended(ot_dir)

    def verdict(problem: str | None, deprecated: bool = False) -> RangeVerdict:
        return RangeVerdict(problem is None, lo, hi, source, problem, deprecated, rec, rec_source)

    if version < lo_t:
        return verdict(f"Python {shown} is too old for OneTrainer (needs >= {lo})")
    if version >= hi_t:
        return verdict(f"Python {shown} is too new for OneTrainer (needs < {hi})")
    for rejected, reason in python_data().get("rejected", {}).items():
        if len(version) == 3 and version == parse_version(rejected):
            return verdict(f"Python {shown} is rejected: {reason}")
    padded = tuple(version) + (0,) * (3 - len(version))  # "3.11" means the newest 3.11.x: not below 3.11.0
    return verdict(None, deprecated=padded < (parse_version(rec) or (3, 11)))


def version_matches(request: str, version: tuple[int, ...]) -> bool:
    """pyenv's prefix rule: "3.10" matches 3.10.13; "3.10.13" only itself."""
    wanted = parse_version(request)
    return wanted is not None and tuple(version[: len(wanted)]) == wanted


# The launcher's interpreter -----------------------------------------------------------------------
@dataclass(frozen=True)
class PythonChoice:
    """What `${OT_PYTHON_CMD:-python}` means in the checkout.

    via:       "pyenv" (a shim decides), "OT_PYTHON_CMD" (an explicit command), "PATH" (no pyenv).
    requested: the version pyenv is asked for ("3.10", "3.11.0", "system"); None outside pyenv.
    source:    where that request comes from ("/ot/.python-version", "PYENV_VERSION", "pyenv global").
    executable: the real interpreter, when it exists.
    """

    command: str
    via: str
    pyenv: PyenvInfo
    requested: str | None
    source: str
    pinned_in_checkout: bool  # the checkout itself has a .python-version
    installed: bool
    executable: Path | None
    pyenv_version_name: str | None  # the installed pyenv version dir ("3.10.13")
    info: InterpreterInfo | None
    shim_path: str | None = None  # where `python` resolved (a shim, or a plain interpreter)
    overrides: tuple[str, str] | None = None  # (.python-version, its version) that PYENV_VERSION hides

    @property
    def version(self) -> tuple[int, ...] | None:
        return self.info.version if self.info and self.info.ok else None


def _is_shim(path: str | None) -> bool:
    return path is not None and bool(path) and Path(path).parent.name == "shims"


def _path_without_shims(env: dict[str, str]) -> dict[str, str]:
    entries = [p for p in env.get("PATH", "").split(":") if p and Path(p).name != "shims"]
    return {**env, "PATH": ":".join(entries)}


def python_choice(ctx: Context) -> PythonChoice:
    """The launcher's Python for this checkout (memoised per run)."""
    return ctx.memo("python.choice", lambda: _choose(ctx))


def _choose(ctx: Context) -> PythonChoice:
    probe = ctx.probe
    pyenv = probe.pyenv()
    command = probe.env.get("OT_PYTHON_CMD") or "python"
    resolved = probe.which(command) if "/" not in command else (command if Path(command).exists() else None)
    pinned = ctx.ot_dir is not None and (ctx.ot_dir / ".python-version").is_file()
    if pyenv.root is not None and _is_shim(resolved):
        return _through_pyenv(ctx, pyenv, pyenv.root, command, pinned, resolved)
    via = "OT_PYTHON_CMD" if probe.env.get("OT_PYTHON_CMD") else "PATH"
    exe = Path(resolved) if resolved else None
    info = _interpreter(ctx, exe) if exe is not None else None
    source = f"OT_PYTHON_CMD={command}" if via == "OT_PYTHON_CMD" else f"`{command}` on PATH"
    return PythonChoice(command, via, pyenv, None, source, pinned, exe is not None, exe, None, info, resolved)


def _through_pyenv(
    ctx: Context, pyenv: PyenvInfo, root: Path, command: str, pinned: bool, resolved: str | None
) -> PythonChoice:
    """`python` is a pyenv shim: the version pyenv resolves in the checkout (or home) decides."""
    probe: Probe = ctx.probe
    folder = ctx.ot_dir if ctx.ot_dir is not None and ctx.ot_dir.is_dir() else probe.home
    req = probe.python_request(folder)
    requested = req.version or "system"
    source = {"PYENV_VERSION": "PYENV_VERSION", "global": f"pyenv global ({root / 'version'})"}.get(
        req.source, req.source
    )
    if req.version is None:
        source = "pyenv default (no version set anywhere)"
    exe: Path | None = None
    name = None
    if requested == "system":
        from otdoctor.probe.commands import which

        found = which(command, _path_without_shims(probe.env))
        exe = Path(found) if found else None
    elif req.prefix is not None:
        exe = req.prefix / "bin" / "python"
        name = req.prefix.name
    info = _interpreter(ctx, exe) if exe is not None else None
    return PythonChoice(
        command, "pyenv", pyenv, requested, source, pinned, exe is not None, exe, name, info, resolved, req.overrides
    )


def _interpreter(ctx: Context, exe: Path) -> InterpreterInfo:
    """The interpreter's answer, cached until it or its compiled stdlib modules change
    (`pyenv install --force` after installing -dev packages rewrites lib-dynload)."""
    from otdoctor.onetrainer.venv_facts import interpreter_cached
    from otdoctor.probe.fingerprint import glob_names, realpath

    prefix = Path(realpath(exe)).parent.parent
    dynload = glob_names(prefix, "lib/python*/lib-dynload")
    return interpreter_cached(ctx, exe, watch=[*dynload, *glob_names(prefix, "lib/python*/tkinter")])
