"""`otdoctor explain` output: each known problem with its evidence, diagnosis, fix and sources;
`--list`: the whole table."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from otdoctor.redact import redact
from otdoctor.render.emit import Destination, Draw

if TYPE_CHECKING:
    from otdoctor.explain.known_problems import Match
    from otdoctor.explain.table import KnownProblem


def _e(text: str) -> str:
    return escape(redact(text))


def _sources(problem: KnownProblem) -> str:
    return ", ".join(problem.sources)


def _no_match(out: Console, last_error: str | None) -> None:
    from otdoctor.explain.table import known_problems

    out.print("[yellow]No known problem recognised[/] in this output.")
    if last_error:
        out.print(f"  the last error line: {_e(last_error)}")
    out.print(
        f"  otdoctor knows {len(known_problems())} problems OneTrainer users reported "
        "(`otdoctor explain --list`); this is not one of them (or the log is cut short)."
    )
    out.print("  Run `otdoctor check` to look at the environment, and `otdoctor report` to collect a report to share.")


def render_text(matches: list[Match], out: Console, last_error: str | None = None) -> None:
    if not matches:
        _no_match(out, last_error)
        return
    out.print(f"[bold]Recognised {len(matches)} known problem{'s' if len(matches) != 1 else ''}[/]")
    for m in matches:
        p = m.problem
        out.print()
        out.print(f"[red]✗[/] [bold]{_e(p.title)}[/] [dim]({p.id})[/]")
        out.print(f"    [dim]line {m.line_no}:[/] {_e(m.evidence)}")
        out.print(f"    [dim]why:[/] {_e(p.diagnosis)}")
        out.print(f"    [dim]fix:[/] {_e(p.fix)}")
        for cmd in p.fix_commands():
            out.print(f"      {_e(cmd)}")
        out.print(f"    [dim]reported in:[/] {_e(_sources(p))}")


def render_json(matches: list[Match]) -> str:
    doc = {"recognised": bool(matches), "problems": [m.as_dict() for m in matches]}
    return redact(json.dumps(doc, indent=2)) + "\n"


@dataclass(frozen=True)
class ExplainView:
    """`otdoctor explain`: the known problems found in a log, and its last error line for when none was."""

    matches: Sequence[Match]
    last_error: str | None = None

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        render_text(list(self.matches), dest.console(), self.last_error)

    def _json(self, dest: Destination) -> None:
        dest.write(render_json(list(self.matches)))


@dataclass(frozen=True)
class KnownProblemsView:
    """`otdoctor explain --list`: every known problem, what it is and where it was reported."""

    problems: Sequence[KnownProblem]

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        out = dest.console()
        upstream = sum(1 for p in self.problems if p.upstream_sources())
        out.print(
            f"[bold]{len(self.problems)} known problems[/] "
            f"({upstream} reported on OneTrainer's issue tracker; the rest on a fork's or in the setup guide)"
        )
        for p in self.problems:
            out.print()
            out.print(f"[bold]{p.id}[/]  {escape(p.title)}")
            out.print(f"    [dim]reported in:[/] {escape(_sources(p))}")
            out.print(f"    [dim]fix:[/] {escape(p.fix)}")

    def _json(self, dest: Destination) -> None:
        doc = {
            "count": len(self.problems),
            "problems": [{**p.as_dict(), "patterns": list(p.patterns)} for p in self.problems],
        }
        dest.write(json.dumps(doc, indent=2) + "\n")
