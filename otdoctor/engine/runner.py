"""Run checks: dependency order, concurrency, a timeout each, and never abort the run.

A check whose prerequisite did not pass (FAIL, ERROR, SKIP) is SKIP with that reason; a check that
raises becomes ERROR with its traceback kept; a check that outlives its timeout is ERROR and the
run moves on (the thread is abandoned: Python cannot kill it, and it is a daemon).
"""

from __future__ import annotations

import os
import platform
import queue
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from otdoctor import __version__
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Outcome, Report, Status

PASSING = (Status.OK, Status.WARN)

# The longest the main thread blocks in one wait. The kernel may hand Ctrl-C or SIGTERM to a check's
# thread; Python then only sets a flag, and the main thread raises KeyboardInterrupt when its wait
# returns: without a cap that is when the check finishes or times out (a minute later).
SIGNAL_POLL_S = 0.25


def _order(checks: list[Check]) -> list[Check]:
    """Stable topological order; requirements that are not selected are ignored."""
    by_id = {c.id: c for c in checks}
    ordered: list[Check] = []
    state: dict[str, int] = {}

    def visit(check: Check) -> None:
        mark = state.get(check.id)
        if mark == 2:
            return
        if mark == 1:
            raise ValueError(f"dependency cycle through check {check.id}")
        state[check.id] = 1
        for dep in check.requires:
            if dep in by_id:
                visit(by_id[dep])
        state[check.id] = 2
        ordered.append(check)

    for check in checks:
        visit(check)
    return ordered


def run_one(check: Check, ctx: Context) -> Outcome:
    """Diagnose one check, turning any exception into ERROR."""
    start = time.perf_counter()
    tb = None
    try:
        result = check.diagnose(ctx)
        if not isinstance(result, CheckResult):
            raise TypeError(f"{type(check).__name__}.diagnose returned {type(result).__name__}, not CheckResult")
    except Exception as exc:
        tb = traceback.format_exc()
        result = CheckResult(
            Status.ERROR,
            f"the check crashed: {type(exc).__name__}: {exc}",
            why="this is a bug in the check, not necessarily a problem with your machine",
            fix=None,
        )
    return _outcome(check, result, time.perf_counter() - start, tb)


def _outcome(check: Check, result: CheckResult, duration_s: float = 0.0, tb: str | None = None) -> Outcome:
    return Outcome(
        check_id=check.id,
        title=check.title,
        area=check.area,
        required=check.required,
        result=result,
        duration_s=duration_s,
        traceback=tb,
        can_fix=check.can_fix(),
    )


def _blocked_by(check: Check, ctx: Context, selected: set[str]) -> str | None:
    for dep in check.requires:
        if dep not in selected:
            continue
        res = ctx.result(dep)
        if res is None:
            return f"skipped because {dep} did not run"
        if res.status is Status.SKIP and res.summary.startswith("skipped because "):
            return res.summary  # name the root cause, not the chain of skips
        if res.status not in PASSING or res.blocks_dependents:
            return f"skipped because {dep}: {res.summary}"
    return None


@dataclass
class _Run:
    """The state of one `run_checks`: what waits, what runs (with its start time), what is done."""

    ctx: Context
    selected: set[str]
    pending: list[Check]
    max_workers: int
    on_done: Callable[[Outcome], None] | None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    running: dict[str, tuple[Check, float]] = field(default_factory=dict)
    done_queue: queue.Queue[Outcome] = field(default_factory=queue.Queue)

    def finish(self, outcome: Outcome) -> None:
        self.outcomes[outcome.check_id] = outcome
        self.ctx.record(outcome)
        if self.on_done:
            self.on_done(outcome)

    def _work(self, check: Check) -> None:
        self.done_queue.put(run_one(check, self.ctx))

    def start_ready(self) -> None:
        """Start every pending check whose prerequisites are done, up to `max_workers` at once."""
        for check in list(self.pending):
            if len(self.running) >= self.max_workers:
                break
            if any(dep in self.selected and dep not in self.outcomes for dep in check.requires):
                continue
            self.pending.remove(check)
            reason = _blocked_by(check, self.ctx, self.selected)
            if reason:
                self.finish(_outcome(check, CheckResult(Status.SKIP, reason)))
                continue
            self.running[check.id] = (check, time.monotonic())
            # Daemon threads: a check stuck past its timeout must not keep the process alive.
            threading.Thread(target=self._work, args=(check,), name=f"check {check.id}", daemon=True).start()

    def wait_for_one(self) -> None:
        """Take one finished check, waiting at most until the earliest running check's deadline."""
        deadline = min(started + check.timeout_s for check, started in self.running.values())
        try:
            outcome = self.done_queue.get(timeout=min(SIGNAL_POLL_S, max(0.0, deadline - time.monotonic())))
            if outcome.check_id in self.running:  # not already given up on
                self.running.pop(outcome.check_id)
                self.finish(outcome)
        except queue.Empty:
            pass

    def give_up_overdue(self) -> None:
        now = time.monotonic()
        for check_id, (check, started) in list(self.running.items()):
            if now - started >= check.timeout_s:
                self.running.pop(check_id)
                result = CheckResult(
                    Status.ERROR,
                    f"the check did not finish within {check.timeout_s:g} s",
                    why="something it waits for hangs (a slow disk, a hung driver, a stuck process)",
                )
                self.finish(_outcome(check, result, now - started))


def run_checks(
    checks: Iterable[Check],
    ctx: Context,
    max_workers: int = 8,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run `checks` concurrently as their prerequisites finish; outcomes in the checks' order."""
    ordered = _order(list(checks))
    run = _Run(ctx, {c.id for c in ordered}, list(ordered), max_workers, on_done)
    while run.pending or run.running:
        run.start_ready()
        if not run.running:
            continue
        run.wait_for_one()
        run.give_up_overdue()
    return [run.outcomes[c.id] for c in ordered]


def _os_string() -> str:
    """`Linux-6.8.0-x86_64-with-glibc2.36`, as platform.platform() says it, without its cost: that
    runs `uname -p` in a subprocess and scans the interpreter's binary for the libc version."""
    uname = platform.uname()  # the processor field, the slow one, is computed only when read
    text = f"{uname.system}-{uname.release}-{uname.machine}"
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        libc = ""
    return f"{text}-with-{libc.replace(' ', '')}" if libc else text


def host_facts() -> dict[str, str]:
    return {
        "hostname": socket.gethostname(),
        "os": _os_string(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def build_report(outcomes: list[Outcome], ctx: Context, started: float) -> Report:
    return Report(
        outcomes=tuple(outcomes),
        ot_dir=str(ctx.ot_dir) if ctx.ot_dir else None,
        duration_s=time.perf_counter() - started,
        otdoctor_version=__version__,
        host=host_facts(),
    )
