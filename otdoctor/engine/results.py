"""The result model shared by checks, the runner and the renderers.

Everything here is a frozen dataclass or an enum: a check returns values, the runner wraps them,
the renderers read them. Units are in the names (`duration_s`, `free_bytes`); humanising happens
only in `otdoctor.render`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"

    @property
    def rank(self) -> int:
        """Severity order used to pick the worst status of a group."""
        return _RANK[self]


_RANK = {Status.OK: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


@dataclass(frozen=True)
class Fix:
    """What to do about a finding.

    `commands` are shell lines the user can copy. `automatic` says whether `otdoctor fix` can
    apply it (the check then implements `fix`); manual steps are listed with automatic=False.
    """

    summary: str
    commands: tuple[str, ...] = ()
    automatic: bool = False


@dataclass(frozen=True)
class CheckResult:
    """What one check found.

    summary:  one line, what was found ("Python 3.10.13 from .python-version").
    expected: what a healthy machine has ("Python >=3.10,<3.14, not 3.11.0").
    why:      why it matters to a OneTrainer user.
    fix:      what to do, as commands to copy.
    details:  extra lines shown under the summary (lists of packages, processes...).
    data:     machine-readable facts for JSON output and for checks that depend on this one.
    blocks_dependents: a WARN after which the checks that require this one cannot run (no
              OneTrainer checkout yet: a warning for the machine, but nothing to look at).
    """

    status: Status
    summary: str
    expected: str | None = None
    why: str | None = None
    fix: Fix | None = None
    details: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    blocks_dependents: bool = False

    # Small constructors keep check bodies short and uniform.
    @classmethod
    def ok(cls, summary: str, **kw: Any) -> CheckResult:
        return cls(Status.OK, summary, **kw)

    @classmethod
    def warn(cls, summary: str, **kw: Any) -> CheckResult:
        return cls(Status.WARN, summary, **kw)

    @classmethod
    def fail(cls, summary: str, **kw: Any) -> CheckResult:
        return cls(Status.FAIL, summary, **kw)

    @classmethod
    def skip(cls, summary: str, **kw: Any) -> CheckResult:
        return cls(Status.SKIP, summary, **kw)


@dataclass(frozen=True)
class Outcome:
    """A check's result as the runner saw it: identity, timing, and a traceback if it crashed."""

    check_id: str
    title: str
    area: str
    required: bool
    result: CheckResult
    duration_s: float = 0.0
    traceback: str | None = None
    can_fix: bool = False

    @property
    def status(self) -> Status:
        return self.result.status

    def is_failure(self, strict: bool = False) -> bool:
        """Does this outcome make `otdoctor check` exit non-zero?"""
        status = self.result.status
        if status is Status.ERROR:
            return True
        if status is Status.FAIL:
            return self.required or strict
        if status is Status.WARN:
            return strict
        return False


@dataclass(frozen=True)
class Report:
    """A whole run: every outcome plus facts about the run itself."""

    outcomes: tuple[Outcome, ...]
    ot_dir: str | None
    duration_s: float
    otdoctor_version: str
    host: Mapping[str, Any] = field(default_factory=dict)

    def exit_code(self, strict: bool = False) -> int:
        return 1 if any(o.is_failure(strict) for o in self.outcomes) else 0

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for o in self.outcomes:
            counts[o.status.value] += 1
        return counts

    def get(self, check_id: str) -> Outcome | None:
        for o in self.outcomes:
            if o.check_id == check_id:
                return o
        return None


@dataclass(frozen=True)
class FixOutcome:
    """What applying a fix did. `changed` is False for a dry run or a declined confirmation."""

    check_id: str
    applied: bool
    message: str
    commands: tuple[str, ...] = ()
