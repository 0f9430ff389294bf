"""Text for people: grouped by area, one line per check, details under the ones that are not OK."""

from __future__ import annotations

import re
from typing import IO

from rich.console import Console

from otdoctor.engine.check import Check
from otdoctor.engine.results import Outcome, Report, Status, Verdict
from otdoctor.render.safe_text import SafeConsole, field

SYMBOL = {Status.OK: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.ERROR: "‼", Status.SKIP: "-"}
WORD = {Status.OK: "ok", Status.WARN: "warning", Status.FAIL: "failed", Status.ERROR: "crashed", Status.SKIP: "skipped"}
STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.ERROR: "bold red", Status.SKIP: "dim"}


def console(file: IO[str] | None = None, force_color: bool | None = None) -> Console:
    """Colour only on a terminal (rich also honours NO_COLOR and TERM=dumb).

    Off a terminal (a pipe, a file, a CI log) rich would squeeze tables into 80 columns and cut
    command lines; $COLUMNS still wins, else 160 keeps them whole and pasteable.
    """
    import os
    import sys

    target = file if file is not None else sys.stdout
    is_tty = bool(getattr(target, "isatty", lambda: False)())
    width = None if is_tty or os.environ.get("COLUMNS") else 160
    return SafeConsole(file=file, force_terminal=force_color, highlight=False, soft_wrap=True, width=width)


def _e(text: str) -> str:
    return field(text)


def _problem_lines(o: Outcome) -> list[str]:
    """expected, why and fix: shown for a check that is not OK and not skipped."""
    r = o.result
    lines = []
    if r.expected:
        lines.append(f"      [dim]expected:[/] {_e(r.expected)}")
    if r.why:
        lines.append(f"      [dim]why:[/] {_e(r.why)}")
    if r.fix:
        auto = " [dim](otdoctor fix " + o.check_id + ")[/]" if r.fix.automatic and o.can_fix else ""
        lines.append(f"      [dim]fix:[/] {_e(r.fix.summary)}{auto}")
        lines += [f"        {_e(cmd)}" for cmd in r.fix.commands]
        if r.fix.instead:
            lines.append(f"      [dim]or instead:[/] {_e(r.fix.instead.summary)}")
            lines += [f"        {_e(cmd)}" for cmd in r.fix.instead.commands]
    return lines


def outcome_lines(o: Outcome, verbose: bool = False) -> list[str]:
    """Rich-markup lines for one outcome; shared by `check` and `fix`."""
    r = o.result
    style = STYLE[r.status]
    lines = [f"  [{style}]{SYMBOL[r.status]}[/] {_e(o.title)} [dim]({o.check_id})[/]: {_e(r.summary)}"]
    if r.status is not Status.OK or verbose:
        lines += [f"      {_e(d)}" for d in r.details]
        if r.status not in (Status.OK, Status.SKIP):
            lines += _problem_lines(o)
    if o.traceback and verbose:
        lines += [f"      [dim]{_e(tb_line)}[/]" for tb_line in o.traceback.rstrip().splitlines()]
    if verbose and o.duration_s:
        lines.append(f"      [dim]took {o.duration_s * 1000:.0f} ms[/]")
    return lines


def _dependency_skip(o: Outcome) -> bool:
    """Skipped only because a check it needs did not pass: the root cause is shown elsewhere."""
    return o.status is Status.SKIP and o.result.summary.startswith("skipped because ")


_NEEDS = re.compile(r"skipped because (\S+?)(?::| did not run)")


def skipped_line(skipped: list[Outcome]) -> str:
    """All dependency skips as one line, grouped by the check whose finding stopped them."""
    by_cause: dict[str, int] = {}
    for o in skipped:
        found = _NEEDS.match(o.result.summary)
        cause = found.group(1) if found else o.result.summary
        by_cause[cause] = by_cause.get(cause, 0) + 1
    causes = ", ".join(f"{n} need {cause}" for cause, n in by_cause.items())
    word = "check" if len(skipped) == 1 else "checks"
    line = f"{SYMBOL[Status.SKIP]} {len(skipped)} {word} skipped: {_e(causes)} (--verbose lists them)"
    return f"[{STYLE[Status.SKIP]}]{line}[/]"


def summary_line(report: Report) -> str:
    c = report.counts()
    parts = [f"{c['ok']} ok"]
    for key, word in (("warn", "warnings"), ("fail", "failed"), ("error", "crashed"), ("skip", "skipped")):
        if c[key]:
            parts.append(f"{c[key]} {word}")
    return f"checks: {', '.join(parts)} in {report.duration_s:.2f} s"


def verdict_line(verdict: Verdict) -> str:
    """The last line: ready to train or not, why, and what to run next."""
    style = "bold green" if verdict.ready else "bold red"
    return f"[{style}]{verdict.head}[/]{_e(verdict.sentence()[len(verdict.head) :])}"


def _grouped(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    areas: dict[str, list[Outcome]] = {}
    for o in outcomes:
        areas.setdefault(o.area, []).append(o)
    return areas


def render(report: Report, out: Console, verbose: bool = False, strict: bool = False) -> None:
    header = f"OneTrainer: {_e(report.ot_dir)}" if report.ot_dir else "OneTrainer: not found"
    out.print(f"[bold]otdoctor {report.otdoctor_version}[/] · {header}")
    ordered = report.in_build_order()
    skipped = [] if verbose else [o for o in ordered if _dependency_skip(o)]
    shown = [o for o in ordered if o not in skipped]
    for area, items in _grouped(shown).items():
        out.print()
        out.print(f"[bold]{_e(area)}[/]")
        for o in items:
            for line in outcome_lines(o, verbose):
                out.print(line)
    if skipped:
        out.print()
        out.print(skipped_line(skipped))
    out.print()
    out.print(summary_line(report))
    if report.exit_code(strict) and any(o.can_fix and o.status is Status.FAIL for o in report.outcomes):
        out.print("[dim]Some of these can be repaired: run[/] otdoctor fix")
    out.print(verdict_line(report.verdict(strict)))


def render_list(checks: list[Check], out: Console) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("id")
    table.add_column("area")
    table.add_column("title")
    table.add_column("required")
    table.add_column("fix")
    for c in checks:
        table.add_row(c.id, c.area, c.title, "yes" if c.required else "no", "yes" if c.can_fix() else "")
    out.print(table)
