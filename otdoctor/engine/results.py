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
    `instead` is another way to the same end (e.g. ImageMagick for `otdoctor fix`): printed apart
    from `commands`, to run in their place, never after them.
    """

    summary: str
    commands: tuple[str, ...] = ()
    automatic: bool = False
    instead: Fix | None = None


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

    def in_build_order(self) -> list[Outcome]:
        """Outcomes by area in the order a setup is built, problems first within an area."""
        return sorted(self.outcomes, key=lambda o: (area_rank(o.area), o.area, -o.status.rank))

    def verdict(self, strict: bool = False) -> Verdict:
        return judge(self, strict)


# The order a setup is built in: what a user fixes first comes first. Other areas (plugins) follow.
AREA_ORDER = ("system", "python", "onetrainer", "venv", "gpu", "models", "config", "dataset")

# Without these a "ready" would be a guess: --only/--skip left out OneTrainer, its venv or the GPU.
CORE_CHECKS = ("onetrainer.checkout", "venv.torch", "gpu.driver")


def area_rank(area: str) -> int:
    return AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER)


@dataclass(frozen=True)
class Verdict:
    """The answer to "ready to train?": yes or no, the one reason, and the command to run next."""

    ready: bool
    reason: str
    next: str | None = None

    @property
    def head(self) -> str:
        return "ready to train" if self.ready else "not ready"

    def sentence(self) -> str:
        """`not ready: OneTrainer is not installed (no checkout found) -> otdoctor install`."""
        return f"{self.head}: {self.reason}" + (f" -> {self.next}" if self.next else "")


def next_command(o: Outcome) -> str:
    """What to run about one finding: otdoctor's own repair, else the fix's first command as a whole."""
    fix = o.result.fix
    if o.status is not Status.ERROR and fix is not None:
        if fix.automatic and o.can_fix:
            return f"otdoctor fix {o.check_id}"
        if fix.commands:
            return whole_command(fix.commands)
    return f"otdoctor check --only {o.check_id} --verbose"


def whole_command(commands: tuple[str, ...]) -> str:
    """A fix's lines as one command to paste: lines after a bare `cd` run in that folder, so they
    belong to it (`cd /x && ./install.sh`); otherwise the first line stands alone."""
    lines = [c for c in commands if not c.lstrip().startswith("#")]
    if len(lines) > 1 and lines[0].startswith("cd ") and "&&" not in lines[0]:
        return " && ".join(lines)
    return lines[0] if lines else commands[0]


def _blocker(o: Outcome, strict: bool) -> bool:
    return o.is_failure(strict) or (o.status is Status.WARN and o.result.blocks_dependents)


def _reason(o: Outcome) -> str:
    if o.status is Status.ERROR:
        return f"{o.check_id}: {o.result.summary}"  # "the check crashed: ..." or "did not finish"
    if o.result.blocks_dependents:  # written as a whole sentence: "OneTrainer is not installed ..."
        return o.result.summary
    return f"{o.title}: {o.result.summary}"  # "System memory: 23.5 GiB RAM, ..." needs its subject


def judge(report: Report, strict: bool = False) -> Verdict:
    """The first blocking finding in build order decides; then a missing GPU; then readiness."""
    ordered = report.in_build_order()
    for o in ordered:
        if _blocker(o, strict):
            return Verdict(False, _reason(o), next_command(o))
    if any(o.result.data.get("nvidia_gpu") is False for o in ordered):
        return Verdict(
            False,
            "no NVIDIA GPU on this machine: OneTrainer would train on the CPU, far too slowly to be useful",
            "otdoctor gpu",
        )
    # Failures of optional checks (VRAM another program holds right now) do not fail the run, but
    # training meets them; the verdict names them rather than calling the run problem-free.
    bites = [o for o in ordered if o.status is Status.FAIL]
    partial = _partial(ordered, bites)
    if partial is not None:
        return partial
    if bites:
        return Verdict(True, f"every required check passed, but {_will_bite(bites)}", next_command(bites[0]))
    notes = [o for o in ordered if o.status is Status.WARN]
    if notes:
        more = f" (and {len(notes) - 1} more)" if len(notes) > 1 else ""
        reason = f"every required check passed; worth a look: {_reason(notes[0])}{more}"
        return Verdict(True, reason, "otdoctor smoke")
    return Verdict(True, "every check passed", "otdoctor smoke")


def _partial(ordered: list[Outcome], bites: list[Outcome]) -> Verdict | None:
    """--only/--skip left out a core check: say so instead of claiming readiness."""
    ran = {o.check_id for o in ordered}
    missing = [c for c in CORE_CHECKS if c not in ran]
    if not missing:
        return None
    reason = f"cannot tell: {', '.join(missing)} did not run"
    if bites:
        return Verdict(False, f"{reason}; of the {len(ran)} that did, {_will_bite(bites)}", next_command(bites[0]))
    return Verdict(False, f"{reason} (no blocking problem in the {len(ran)} that did)", "otdoctor check")


def _will_bite(bites: list[Outcome]) -> str:
    """`1 problem will bite: Free VRAM: 4.0 GiB free, ...`: the first failed optional check, and how many."""
    n = len(bites)
    return f"{n} problem{'s' if n > 1 else ''} will bite training: {_reason(bites[0])}"


@dataclass(frozen=True)
class FixOutcome:
    """What applying a fix did. `changed` is False for a dry run or a declined confirmation."""

    check_id: str
    applied: bool
    message: str
    commands: tuple[str, ...] = ()
