"""`otdoctor fix`: for each failing check that can repair itself, plan, confirm, run, check again.

The loop re-diagnoses everything after each fix (a whole `otdoctor check` takes well under a
second), because one repair often settles several findings: a rebuilt venv fixes the Python
version, setuptools and the requirements at once. A finding no fix can settle (a space in the
path, a FAT32 drive, a driver update) is printed with its manual steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from otdoctor.engine.check import Check, Context
from otdoctor.engine.doctor import selected_checks
from otdoctor.engine.registry import _matches
from otdoctor.engine.results import FixOutcome, Outcome, Report, Status
from otdoctor.engine.runner import build_report, run_checks

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


def _wanted(o: Outcome, patterns: Iterable[str], checks: dict[str, Check]) -> bool:
    patterns = list(patterns)
    return not patterns or any(_matches(checks[o.check_id], p) for p in patterns)


def run_fix(ctx: Context, patterns: Iterable[str], dry_run: bool, view: FixUI) -> int:
    patterns = list(patterns)
    ctx.options.extra["explicit"] = tuple(patterns)
    checks = selected_checks()  # all of them: prerequisites must run for the targets to run
    if patterns:
        selected_checks(patterns)  # unknown names are a usage error
    by_id = {c.id: c for c in checks}
    report = _diagnose(ctx, checks)
    attempted: set[str] = set()
    fixed = failed = 0
    manual: set[str] = set()

    while True:
        target = next(
            (
                o
                for o in report.outcomes
                if o.status in NEEDS_FIX and o.can_fix and o.check_id not in attempted and _wanted(o, patterns, by_id)
            ),
            None,
        )
        if target is None:
            break
        attempted.add(target.check_id)
        check = by_id[target.check_id]
        view.header(target)
        plan = check.fix(ctx, view.confirm, True)  # dry run: the plan only
        view.plan(plan)
        if dry_run:
            continue
        if not plan.commands:  # nothing to run (already fine, or only manual steps): said by the plan
            continue
        if not view.confirm(f"Apply the fix for {target.check_id}?"):
            view.applied(FixOutcome(target.check_id, False, "skipped (not confirmed)"))
            continue
        ctx.forget()
        outcome = check.fix(ctx, view.confirm, False)
        view.applied(outcome)
        report = _diagnose(ctx, checks)
        after = report.get(target.check_id)
        view.after(target, after)
        if (
            after is not None
            and after.status in (Status.OK, Status.SKIP)
            or (after is not None and after.status is Status.WARN and target.status is not Status.WARN)
        ):
            fixed += 1
        else:
            failed += 1

    # What remains and cannot be fixed automatically: the manual steps.
    for o in report.outcomes:
        # No checkout at all is only a warning for `check`, but nothing here can be fixed without one.
        no_checkout = o.check_id == "onetrainer.checkout" and o.status is not Status.OK
        if (o.status in (Status.FAIL, Status.ERROR) or no_checkout) and not o.can_fix and _wanted(o, patterns, by_id):
            view.manual(o)
            manual.add(o.check_id)
    nothing = not attempted and not manual
    view.summary(fixed, failed, len(manual), nothing, dry_run)
    if dry_run:
        return 0
    remaining = [o for o in report.outcomes if _wanted(o, patterns, by_id) and o.is_failure()]
    return 1 if remaining or failed else 0
