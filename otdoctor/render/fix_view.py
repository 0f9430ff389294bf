"""What `otdoctor fix` shows: each finding, its plan as commands, the outcome, the re-check."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from otdoctor.engine.results import FixOutcome, Outcome, Status
from otdoctor.redact import redact
from otdoctor.render.install_view import InstallView
from otdoctor.render.text import STYLE, SYMBOL


def _e(text: str) -> str:
    return escape(redact(text))


class FixView(InstallView):
    """Also an InstallUI: repairs that run pip stream its output into the same live view."""

    def __init__(self, out: Console, confirm: Any) -> None:
        super().__init__(out, confirm)

    def header(self, o: Outcome) -> None:
        self._stop()
        r = o.result
        self.out.print()
        self.out.print(
            f"[{STYLE[r.status]}]{SYMBOL[r.status]}[/] [bold]{_e(o.title)}[/] [dim]({o.check_id})[/]: {_e(r.summary)}"
        )

    def plan(self, fix: FixOutcome) -> None:
        """The plan's first line, the commands it would run, then its notes (what it leaves alone)."""
        first, *notes = fix.message.splitlines() or [""]
        self.out.print(f"    [dim]fix:[/] {_e(first)}")
        for cmd in fix.commands:
            self.out.print(f"      {_e(cmd)}")
        for line in notes:
            self.out.print(f"      {_e(line)}")

    def applied(self, fix: FixOutcome) -> None:
        self._stop()
        mark = "[green]✓[/]" if fix.applied else "[yellow]-[/]"
        self._lines_under(f"    {mark} ", fix.message)

    def _lines_under(self, lead: str, message: str) -> None:
        """A message of several lines: the first after LEAD, the others indented below it."""
        first, *rest = message.splitlines() or [""]
        self.out.print(f"{lead}{_e(first)}")
        for line in rest:
            self.out.print(f"      {_e(line)}")

    def after(self, before: Outcome, after: Outcome | None) -> None:
        if after is None:
            self.out.print("    [dim]re-check:[/] the check did not run")
            return
        r = after.result
        self.out.print(
            f"    [dim]re-check:[/] [{STYLE[r.status]}]{SYMBOL[r.status]} {r.status.value}[/]: {_e(r.summary)}"
        )

    def manual(self, o: Outcome) -> None:
        r = o.result
        self.out.print()
        self.out.print(
            f"[{STYLE[r.status]}]{SYMBOL[r.status]}[/] [bold]{_e(o.title)}[/] [dim]({o.check_id})[/]: {_e(r.summary)}"
        )
        self.out.print("    [dim]cannot be fixed automatically; do this by hand:[/]")
        if r.fix is not None:
            self.out.print(f"    {_e(r.fix.summary)}")
            for cmd in r.fix.commands:
                self.out.print(f"      {_e(cmd)}")
            if r.fix.instead:
                self.out.print(f"    [dim]or instead:[/] {_e(r.fix.instead.summary)}")
                for cmd in r.fix.instead.commands:
                    self.out.print(f"      {_e(cmd)}")
        elif r.why:
            self.out.print(f"    {_e(r.why)}")

    def summary(self, fixed: int, failed: int, manual: int, nothing: bool, dry_run: bool) -> None:
        self._stop()
        self.out.print()
        if nothing:
            self.out.print("[green]Nothing to fix[/]: no failing check has a repair.")
            return
        if dry_run:
            self.out.print("dry run: nothing was changed")
            return
        parts = [f"{fixed} fixed"]
        if failed:
            parts.append(f"[red]{failed} still failing[/]")
        if manual:
            parts.append(f"{manual} need manual steps")
        self.out.print(", ".join(parts))


__all__ = ["FixView", "Status"]
