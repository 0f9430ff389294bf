"""`otdoctor fix`: for each failing check that can repair itself, plan, confirm, run, check again.

The loop re-diagnoses everything after each fix (a whole `otdoctor check` takes well under a
second), because one repair often settles several findings: a rebuilt venv fixes the Python
version, setuptools and the requirements at once. A finding no fix can settle (a space in the
path, a FAT32 drive, a driver update) is printed with its manual steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from otdoctor.engine.check import Check, Context
from otdoctor.engine.doctor import make_context, selected_checks
from otdoctor.engine.registry import matches
from otdoctor.engine.results import FixOutcome, Outcome, Report, Status
from otdoctor.engine.runner import build_report, run_checks
from otdoctor.onetrainer.venv_facts import venv_dir
from otdoctor.probe import Probe
from otdoctor.probe.locks import resource_lock

NEEDS_FIX = (Status.FAIL, Status.WARN, Status.ERROR)


class FixUI(Protocol):
    def header(self, outcome: Outcome) -> None: ...
    def plan(self, fix: FixOutcome) -> None: ...
    def confirm(self, question: str) -> bool: ...
    def applied(self, fix: FixOutcome) -> None: ...
    def after(self, before: Outcome, after: Outcome | None) -> None: ...
    def manual(self, outcome: Outcome) -> None: ...
    def summary(self, fixed: int, failed: int, manual: int, nothing: bool, dry_run: bool) -> None: ...


def _diagnose(ctx: Context, checks: list[Check]) -> Report:
    import time

    fresh = Context(ctx.probe, ctx.options)  # no memoised facts from before the fix
    started = time.perf_counter()
    return build_report(run_checks(checks, fresh), fresh, started)


def _settled(target: Outcome, after: Outcome | None) -> bool:
    """The fix worked: the check passes now, or a failure went down to a warning."""
    if after is None:
        return False
    if after.status in (Status.OK, Status.SKIP):
        return True
    return after.status is Status.WARN and target.status is not Status.WARN


@dataclass
class _FixRun:
    ctx: Context
    checks: list[Check]
    patterns: list[str]
    view: FixUI
    dry_run: bool
    attempted: set[str] = field(default_factory=set)
    fixed: int = 0
    failed: int = 0
    by_id: dict[str, Check] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.checks}

    def wanted(self, o: Outcome) -> bool:
        return not self.patterns or any(matches(self.by_id[o.check_id], p) for p in self.patterns)

    def next_target(self, report: Report) -> Outcome | None:
        return next(
            (
                o
                for o in report.outcomes
                if o.status in NEEDS_FIX and o.can_fix and o.check_id not in self.attempted and self.wanted(o)
            ),
            None,
        )

    def attempt(self, target: Outcome, report: Report) -> Report:
        """Plan, confirm and apply the fix for `target`; the report after it (the same one when nothing ran)."""
        ctx, view = self.ctx, self.view
        self.attempted.add(target.check_id)
        check = self.by_id[target.check_id]
        assert check.fix is not None  # only outcomes that can_fix are targets
        view.header(target)
        plan = check.fix(ctx, view.confirm, True)  # dry run: the plan only
        view.plan(plan)
        if self.dry_run or not plan.commands:  # nothing to run (already fine, or only manual steps): said by the plan
            return report
        if not view.confirm(f"Apply the fix for {target.check_id}?"):
            view.applied(FixOutcome(target.check_id, False, "skipped (not confirmed)"))
            return report
        ctx.forget()
        view.applied(check.fix(ctx, view.confirm, False))
        report = _diagnose(ctx, self.checks)
        after = report.get(target.check_id)
        view.after(target, after)
        if _settled(target, after):
            self.fixed += 1
        else:
            self.failed += 1
        return report

    def show_manual(self, report: Report) -> set[str]:
        """What remains and cannot be fixed automatically: the manual steps."""
        manual: set[str] = set()
        for o in report.outcomes:
            # No checkout at all is only a warning for `check`, but nothing here can be fixed without one.
            no_checkout = o.check_id == "onetrainer.checkout" and o.status is not Status.OK
            if (o.status in (Status.FAIL, Status.ERROR) or no_checkout) and not o.can_fix and self.wanted(o):
                self.view.manual(o)
                manual.add(o.check_id)
        return manual


def run_fix(ctx: Context, patterns: Iterable[str], dry_run: bool, view: FixUI) -> int:
    patterns = list(patterns)
    ctx.options.extra["explicit"] = tuple(patterns)
    checks = selected_checks()  # all of them: prerequisites must run for the targets to run
    if patterns:
        selected_checks(patterns)  # unknown names are a usage error
    run = _FixRun(ctx, checks, patterns, view, dry_run)
    report = _diagnose(ctx, checks)
    while (target := run.next_target(report)) is not None:
        report = run.attempt(target, report)
    manual = run.show_manual(report)
    nothing = not run.attempted and not manual
    view.summary(run.fixed, run.failed, len(manual), nothing, dry_run)
    if dry_run:
        return 0
    remaining = [o for o in report.outcomes if run.wanted(o) and o.is_failure()]
    return 1 if remaining or run.failed else 0


@dataclass(frozen=True)
class FixRequest:
    """What `otdoctor fix` is asked: which checks (id, id prefix or area; none: all), where, and how."""

    patterns: tuple[str, ...] = ()
    ot_dir: Path | None = None
    config: Path | None = None
    models_dirs: tuple[Path, ...] = ()
    dry_run: bool = False
    yes: bool = False  # ask nothing
    force: bool = False  # allow fixes that stop processes
    in_place: bool = False  # dataset.resolution: replace the original images


def fix(probe: Probe, request: FixRequest, view: FixUI, progress: Callable[[str, int, int], None] | None = None) -> int:
    """Run `otdoctor fix`; the exit code. `progress(what, done, total)` hears long fixes (padding images)."""
    ctx = make_context(probe, request.ot_dir, request.config, request.models_dirs)
    ctx.options.extra.update(force=request.force, yes=request.yes, ui=view, in_place=request.in_place)
    if progress is not None:
        ctx.options.extra["progress"] = progress
    venv = venv_dir(ctx)
    if request.dry_run or venv is None:
        return run_fix(ctx, request.patterns, dry_run=request.dry_run, view=view)
    # Repairs run pip in the venv: never beside an install (or another fix) working in it.
    with resource_lock(venv, f"repairing {venv}", probe.env):
        return run_fix(ctx, request.patterns, dry_run=False, view=view)
