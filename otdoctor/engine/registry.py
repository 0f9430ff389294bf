"""Finding checks: the built-in modules of `otdoctor.checks` plus entry-point plugins.

A module contributes checks through a module-level `CHECKS` list of Check subclasses. A plugin's
entry point (group `otdoctor.checks`) may name a Check subclass, a list of them, or a module with
`CHECKS`. A plugin that fails to load is not dropped: it becomes a check that reports ERROR with
the import traceback, so the user sees it in `otdoctor check`.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Status

ENTRY_POINT_GROUP = "otdoctor.checks"


@dataclass(frozen=True)
class LoadError:
    source: str  # "otdoctor.checks.gpu" or "entry point myplugin = pkg.mod:Check"
    traceback: str


def _broken_plugin_check(error: LoadError, index: int) -> type[Check]:
    """A stand-in check that reports a plugin which could not be loaded."""

    last_line = error.traceback.strip().splitlines()[-1] if error.traceback.strip() else "unknown error"

    class BrokenPlugin(Check):
        id = f"plugin.load-error-{index}"
        title = f"Load {error.source}"
        area = "plugins"
        required = True

        def diagnose(self, ctx: Context) -> CheckResult:
            return CheckResult(
                Status.ERROR,
                f"Check plugin {error.source} failed to load: {last_line}",
                expected="every installed check plugin imports",
                why="its checks did not run, so problems they look for would go unnoticed",
                details=tuple(error.traceback.rstrip().splitlines()[-6:]),
            )

    return BrokenPlugin


def _checks_from(obj: Any) -> list[type[Check]]:
    if isinstance(obj, type) and issubclass(obj, Check):
        return [obj]
    if isinstance(obj, ModuleType):
        return list(getattr(obj, "CHECKS", []))
    if isinstance(obj, (list, tuple)):
        found: list[type[Check]] = []
        for item in obj:
            found.extend(_checks_from(item))
        return found
    raise TypeError(f"{obj!r} is not a Check subclass, a list of them, or a module with CHECKS")


def _builtin_modules() -> Iterable[tuple[str, ModuleType | LoadError]]:
    import otdoctor.checks as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{pkg.__name__}.{info.name}"
        try:
            yield name, importlib.import_module(name)
        except Exception:  # a broken built-in module must not hide the others
            yield name, LoadError(name, traceback.format_exc())


def load_checks(include_plugins: bool = True) -> tuple[list[Check], list[LoadError]]:
    """Every check, built-in first, in a stable order; and what failed to load."""
    classes: list[type[Check]] = []
    errors: list[LoadError] = []
    for _name, module in _builtin_modules():
        if isinstance(module, LoadError):
            errors.append(module)
        else:
            classes.extend(_checks_from(module))
    if include_plugins:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            source = f"entry point {ep.name} = {ep.value}"
            try:
                classes.extend(_checks_from(ep.load()))
            except Exception:
                errors.append(LoadError(source, traceback.format_exc()))
    for index, error in enumerate(errors, start=1):
        classes.append(_broken_plugin_check(error, index))

    seen: set[str] = set()
    checks: list[Check] = []
    for cls in classes:
        if cls.id in seen:  # a plugin may not replace a built-in silently
            errors.append(LoadError(f"check {cls.id}", f"duplicate check id {cls.id!r} ignored\n"))
            continue
        seen.add(cls.id)
        checks.append(cls())
    return checks, errors


def matches(check: Check, pattern: str) -> bool:
    """`--only venv` selects the area, `--only venv.pip` one check, `venv.*` a prefix."""
    if pattern.endswith(".*"):
        pattern = pattern[:-2]
    return check.id == pattern or check.area == pattern or check.id.startswith(pattern + ".")


def select(checks: list[Check], only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[Check]:
    """Filter by id, prefix or area. Unknown names raise ValueError (a usage error for the CLI)."""
    only, skip = list(only), list(skip)
    for pattern in only + skip:
        if not any(matches(c, pattern) for c in checks):
            known = ", ".join(sorted({c.area for c in checks}))
            raise ValueError(f"no check matches {pattern!r} (areas: {known}; see otdoctor check --list)")
    chosen = [c for c in checks if not only or any(matches(c, p) for p in only)]
    return [c for c in chosen if not any(matches(c, p) for p in skip)]
