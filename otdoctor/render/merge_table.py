"""`otdoctor merge` as a table: machines as rows, facts then checks as columns, differences marked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from otdoctor.redact import redact
from otdoctor.render.emit import Destination, Draw
from otdoctor.render.units import human_bytes
from otdoctor.report.merge import FLEET_COLUMNS, Fleet, Machine

STATUS_SYMBOL = {"ok": "✓", "warn": "!", "fail": "✗", "error": "‼", "skip": "-", None: "·"}
STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "error": "bold red", "skip": "dim", None: "dim"}
DIFF_MARK = "≠"
_UNIT = {f.name: f.unit for f in FLEET_COLUMNS}


def fact_text(name: str, value: Any) -> str:
    if value is None:
        return "—"
    values = value if isinstance(value, list) else [value]
    if _UNIT.get(name) == "bytes":
        return ", ".join(human_bytes(v) if isinstance(v, (int, float)) else str(v) for v in values)
    if name == "OneTrainer":
        return ", ".join(str(v)[:10] for v in values)
    return ", ".join(str(v) for v in values)


def _columns(fleet: Fleet, all_checks: bool) -> tuple[list[str], list[str], set[str]]:
    diff = set(fleet.differing_facts()) | set(fleet.differing_checks())
    checks = fleet.check_ids if all_checks else [c for c in fleet.check_ids if c in diff or c in fleet.not_ok_checks()]
    return fleet.fact_names, checks, diff


def _verdict(m: Machine) -> str:
    if m.error:
        return "unreadable"
    c = m.counts
    bad = [
        f"{c.get('fail', 0)} failed" if c.get("fail") else "",
        f"{c.get('error', 0)} crashed" if c.get("error") else "",
        f"{c.get('warn', 0)} warn" if c.get("warn") else "",
    ]
    text = ", ".join(b for b in bad if b)
    return text or "healthy"


def _header(title: str, differs: bool) -> str:
    return f"[bold yellow]{DIFF_MARK}{escape(title)}[/]" if differs else escape(title)


def _machine_row(m: Machine, facts: list[str], diff: set[str], unreadable: bool) -> list[str]:
    verdict_style = "red" if m.failed else "green"
    row = [escape(redact(m.name)), f"[{verdict_style}]{escape(_verdict(m))}[/]"]
    if unreadable:  # the short reason here, the whole message under the table
        row.append(escape(redact((m.error or "").split(":")[0])))
    if m.error:
        return row + [""] * len(facts)
    for n in facts:
        cell = escape(redact(fact_text(n, m.facts.get(n))))
        row.append(f"[bold yellow]{cell}[/]" if n in diff else cell)
    return row


def _facts_table(fleet: Fleet, facts: list[str], diff: set[str]) -> Table:
    table = Table(title=f"otdoctor merge: {len(fleet.machines)} machines", title_justify="left")
    table.add_column("machine", no_wrap=True)
    table.add_column("verdict")
    unreadable = any(m.error for m in fleet.machines)
    if unreadable:
        table.add_column("problem", style="red", max_width=24)
    for name in facts:
        # Versions and sizes never wrap (570.133.0|7 misleads); GPU names and commits may.
        table.add_column(_header(name, name in diff), no_wrap=name not in ("GPU", "OneTrainer"), overflow="fold")
    for m in fleet.machines:
        table.add_row(*_machine_row(m, facts, diff, unreadable))
    return table


def _checks_grid(fleet: Fleet, checks: list[str], diff: set[str]) -> Table:
    grid = Table(title="checks (numbered below)", title_justify="left")
    grid.add_column("machine", no_wrap=True)
    for n, cid in enumerate(checks, 1):
        grid.add_column(_header(str(n), cid in diff), justify="center", no_wrap=True)
    for m in fleet.machines:
        cells = [escape(redact(m.name))]
        for cid in checks:
            status = None if m.error else m.checks.get(cid, {}).get("status")
            cells.append(f"[{STATUS_STYLE.get(status, 'dim')}]{STATUS_SYMBOL.get(status, '?')}[/]")
        grid.add_row(*cells)
    return grid


def text(fleet: Fleet, console: Console, all_checks: bool = False) -> None:
    """Two tables with machines as rows: the facts that matter across a fleet, then the checks.
    Check columns are numbered (the legend names them): forty check ids never fit a terminal."""
    facts, checks, diff = _columns(fleet, all_checks)
    console.print(_facts_table(fleet, facts, diff))
    if checks:
        console.print(_checks_grid(fleet, checks, diff))
        console.print(
            "\n".join(
                f"  {n:>2} {escape(cid)}" + (f"  [bold yellow]{DIFF_MARK}[/]" if cid in diff else "")
                for n, cid in enumerate(checks, 1)
            )
        )
    console.print(escape(_legend(fleet, checks, diff)))


def _legend(fleet: Fleet, checks: list[str], diff: set[str]) -> str:
    lines = []
    if diff:
        lines.append(f"{DIFF_MARK} differs between machines: " + ", ".join(sorted(diff)))
    else:
        lines.append("no differences between machines in the facts and checks compared")
    hidden = len(fleet.check_ids) - len(checks)
    if hidden:
        lines.append(
            f"{hidden} checks with the same passing or skipped verdict everywhere are not shown (--all shows them)"
        )
    lines.append("✓ ok  ! warning  ✗ failed  ‼ crashed  - skipped  · not in that report")
    for m in fleet.machines:
        if m.error:
            lines.append(f"{m.name}: {m.error}")
        failing = [cid for cid, c in m.checks.items() if c["status"] in ("fail", "error")]
        if failing:
            lines.append(f"{m.name}: " + "; ".join(f"{cid}: {m.checks[cid]['summary']}" for cid in failing))
    return redact("\n".join(lines))


def markdown(fleet: Fleet, all_checks: bool = False) -> str:
    facts, checks, diff = _columns(fleet, all_checks)
    unreadable = any(m.error for m in fleet.machines)
    head = (
        ["machine", "verdict"]
        + (["problem"] if unreadable else [])
        + [f"{DIFF_MARK} {n}" if n in diff else n for n in facts]
        + [f"{DIFF_MARK} `{c}`" if c in diff else f"`{c}`" for c in checks]
    )
    icon = {"ok": "✅", "warn": "⚠️", "fail": "❌", "error": "💥", "skip": "⏭️", None: "·"}
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in fleet.machines:
        cells = [m.name, _verdict(m)] + ([m.error or ""] if unreadable else [])
        if m.error:
            cells += [""] * (len(facts) + len(checks))
        else:
            for n in facts:
                value = fact_text(n, m.facts.get(n))
                cells.append(f"**{value}**" if n in diff else value)
            cells += [icon.get(m.checks.get(c, {}).get("status"), "?") for c in checks]
        rows.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n\n" + _legend(fleet, checks, diff) + "\n"


@dataclass(frozen=True)
class FleetView:
    """`otdoctor merge`: the fleet as tables (text), a Markdown table or the JSON summary."""

    fleet: Fleet
    all_checks: bool = False

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "markdown": self._markdown, "json": self._json}

    def _text(self, dest: Destination) -> None:
        text(self.fleet, dest.console(), self.all_checks)

    def _markdown(self, dest: Destination) -> None:
        dest.write(redact(markdown(self.fleet, self.all_checks)))

    def _json(self, dest: Destination) -> None:
        from otdoctor.render import jsonout
        from otdoctor.report import merge

        dest.write(jsonout.dumps(merge.summary(self.fleet)))
