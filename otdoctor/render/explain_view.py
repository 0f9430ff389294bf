"""`otdoctor explain` output: each known problem with its evidence, diagnosis, fix and command."""

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


def _e(text: str) -> str:
    return escape(redact(text))


def render_text(matches: list[Match], out: Console, last_error: str | None = None) -> None:
    if not matches:
        out.print("[yellow]No known problem recognised[/] in this output.")
        if last_error:
            out.print(f"  the last error line: {_e(last_error)}")
        out.print(
            "  otdoctor knows the 17 common OneTrainer problems (and a few more); "
            "this is not one of them (or the log is cut short)."
        )
        out.print(
            "  Run `otdoctor check` to look at the environment, and `otdoctor report` to collect a report to share."
        )
        return
    out.print(f"[bold]Recognised {len(matches)} known problem{'s' if len(matches) != 1 else ''}[/]")
    for m in matches:
        p = m.problem
        out.print()
        out.print(f"[red]✗[/] [bold]{_e(p.title)}[/] [dim]({p.id})[/]")
        out.print(f"    [dim]line {m.line_no}:[/] {_e(m.evidence)}")
        out.print(f"    [dim]why:[/] {_e(p.diagnosis)}")
        out.print(f"    [dim]fix:[/] {_e(p.fix)}")
        for cmd in p.commands:
            out.print(f"      {_e(cmd)}")
        if p.otdoctor:
            out.print(f"    [dim]otdoctor:[/] {_e(p.otdoctor)}")


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
