"""The check object and the context a check runs in.

A check is a small class with a stable `id` and a `diagnose(ctx)` method. It asks `ctx.probe`
for facts about the machine (never `subprocess`, `os.environ` or `pynvml` directly) and returns a
`CheckResult`. Facts several checks need (the venv probe, the NVML snapshot) are computed once per
run through `ctx.memo`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from otdoctor.engine.results import CheckResult, FixOutcome, Outcome

if TYPE_CHECKING:
    from otdoctor.probe import Probe

T = TypeVar("T")


@dataclass
class Options:
    """What the user asked for on the command line; checks read it, never sys.argv."""

    ot_dir: Path | None = None
    ot_dir_source: str | None = None  # "--ot-dir", "OT_DIR", "current folder", "~/Projects/OneTrainer"...
    config_path: Path | None = None
    models_dirs: tuple[Path, ...] = ()
    offline: bool = False
    require_gpu: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Context:
    """Everything a check may use: the probe, the options, earlier results, shared facts."""

    def __init__(self, probe: Probe, options: Options | None = None) -> None:
        self.probe = probe
        self.options = options or Options()
        self._results: dict[str, Outcome] = {}
        self._memo: dict[str, Any] = {}
        self._memo_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def ot_dir(self) -> Path | None:
        return self.options.ot_dir

    # Results of checks that already ran (the runner fills these in dependency order).
    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self._results[outcome.check_id] = outcome

    def result(self, check_id: str) -> CheckResult | None:
        with self._lock:
            outcome = self._results.get(check_id)
        return outcome.result if outcome else None

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute a shared fact once per run, even when several checks ask at the same time."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            key_lock = self._memo_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._memo:
                    return self._memo[key]
            value = compute()
            with self._lock:
                self._memo[key] = value
            return value

    def forget(self, key_prefix: str = "") -> None:
        """Drop memoised facts (after a fix changed the machine)."""
        with self._lock:
            for key in [k for k in self._memo if k.startswith(key_prefix)]:
                del self._memo[key]


class Check:
    """Base class for checks. Subclasses set the class attributes and implement `diagnose`.

    id:        stable, dotted: `area.name` (`venv.python-version`).
    required:  a FAIL of a required check makes `otdoctor check` exit 1; a FAIL of an optional one
               only with --strict.
    requires:  ids that must have passed (OK or WARN) first; otherwise this check is SKIP.
    timeout_s: the runner gives up on the check after this long and reports ERROR.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    area: ClassVar[str]
    required: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()
    timeout_s: ClassVar[float] = 30.0

    def diagnose(self, ctx: Context) -> CheckResult:  # pragma: no cover - interface
        raise NotImplementedError

    # A check that can repair what it finds defines
    #     def fix(self, ctx: Context, confirm: Callable[[str], bool], dry_run: bool) -> FixOutcome
    # (or assigns a module-level function with that signature, defined beside the checks that share
    # it: `fix = rebuild_venv` in checks/venv.py). `confirm(question)`
    # asks the user (True without asking under --yes); with `dry_run` it returns the plan as
    # FixOutcome.commands and changes nothing. Fixes are idempotent; `otdoctor fix` diagnoses the
    # same check again afterwards.
    fix: ClassVar[Callable[..., FixOutcome] | None] = None

    @classmethod
    def can_fix(cls) -> bool:
        return cls.fix is not None and callable(getattr(cls, "fix", None))

    def __repr__(self) -> str:
        return f"<Check {self.id}>"
