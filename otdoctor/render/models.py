"""Text output and progress bars for `otdoctor models list|verify|download`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from shlex import quote
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from otdoctor.checkpoints.inventory import Inventory
from otdoctor.checkpoints.verify import Verdict
from otdoctor.redact import redact
from otdoctor.render import human_bytes

STATE_STYLE = {"verified": "green", "ok": "green", "warning": "yellow", "bad": "red", "not found": "dim"}
KIND_LABEL = {"diffusers": "diffusers folder", "not-a-model": "not safetensors", "pickle": "pickle"}
STATE_SYMBOL = {"verified": "✓", "ok": "✓", "warning": "!", "bad": "✗", "not found": "-"}


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _e(text: str) -> str:
    return escape(redact(text))


def verdict_lines(v: Verdict, how: str | None = None) -> list[str]:
    style = STATE_STYLE[v.state]
    name = v.entry.title if v.entry else v.path.name
    facts = [KIND_LABEL.get(v.kind, v.kind)]
    if v.architecture:
        facts.append(v.architecture)
    if v.size_bytes is not None:
        facts.append(human_bytes(v.size_bytes))
    if v.matched:
        facts.append("sha256 matches " + (f"the {v.matched.label} file" if v.matched.label else "the catalog"))
    elif v.sha256 and not v.entry:
        facts.append(f"sha256 {v.sha256[:16]}…")
    where = f" [dim]({_e(how)})[/]" if how else ""
    lines = [
        f"  [{style}]{STATE_SYMBOL[v.state]}[/] {_e(name)}: {_e(str(v.path))}{where}",
        f"      {_e(', '.join(facts))}",
    ]
    lines += [f"      [red]{_e(p)}[/]" for p in v.problems]
    lines += [f"      [yellow]{_e(w)}[/]" for w in v.warnings]
    if v.problems and v.entry is not None and v.kind != "diffusers":
        lines.append(
            f"      [dim]fix:[/] mv {_e(quote(str(v.path)))} {_e(quote(str(v.path) + '.bad'))} && "
            f"{_e(v.entry.download_command)} --dest {_e(quote(str(v.path.parent)))}"
        )
    return lines


def render_verdicts(verdicts: list[Verdict], out: Console, how: dict[Path, str] | None = None) -> None:
    how = how or {}
    for v in verdicts:
        for line in verdict_lines(v, how.get(v.path)):
            out.print(line)
    bad = sum(1 for v in verdicts if v.problems)
    out.print(f"\n{len(verdicts)} checked: {len(verdicts) - bad} good, {bad} bad" if verdicts else "nothing to verify")


def render_list(inv: Inventory, out: Console, hf_repos: list[dict[str, Any]] | None = None) -> None:
    out.print("[bold]Catalog[/]")
    for e in inv.catalog:
        origin = "" if e.origin == "built-in" else f" [dim](from {_e(e.origin)})[/]"
        out.print(f"  [bold]{_e(e.name)}[/]  {_e(e.title)}, {_e(e.architecture)}, {_e(e.where)}{origin}")
        copies = inv.found.get(e.name) or []
        for part in inv.partials.get(e.name, []):
            out.print(
                f"      [yellow]![/] {_e(str(part.path))}: interrupted download, {human_bytes(_size(part.path))} so far   "
                f"[dim]resume:[/] {_e(inv.resume_command(e.name) or '')}"
            )
        if not copies and not inv.partials.get(e.name):
            out.print(f"      [dim]-[/] not found   [dim]get it:[/] {_e(e.download_command)}")
        for f in copies:
            v = inv.verdicts.get(f.path)
            state = v.state if v else "ok"
            if state == "ok" and v is not None and v.entry is not None and not v.matched:
                label = "complete, sha256 not checked yet (otdoctor models verify)"
            else:
                label = {"verified": "verified", "warning": "warning", "bad": "bad", "ok": "ok"}[state]
            out.print(
                f"      [{STATE_STYLE[state]}]{STATE_SYMBOL[state]}[/] {_e(str(f.path))} [dim]({_e(f.how)})[/]: {_e(label)}"
            )
            if v is not None:
                for p in v.problems:
                    out.print(f"          [red]{_e(p)}[/]")
    if inv.base is not None:
        out.print("[bold]Config base model[/]")
        b = inv.base
        if b.path is None:
            out.print(f"  [red]✗[/] {_e(b.value)}: not found")
        else:
            v = inv.verdicts.get(b.path)
            state = v.state if v else "ok"
            arch = f", {v.architecture}" if v and v.architecture else ""
            out.print(f"  [{STATE_STYLE[state]}]{STATE_SYMBOL[state]}[/] {_e(b.value)} -> {_e(str(b.path))}{_e(arch)}")
            for p in v.problems if v else ():
                out.print(f"      [red]{_e(p)}[/]")
    if inv.others:
        out.print("[bold]Other model files[/]")
        for f in inv.others:
            v = inv.verdicts.get(f.path)
            state = v.state if v else "ok"
            arch = f", {v.architecture}" if v and v.architecture else ""
            size = f", {human_bytes(v.size_bytes)}" if v and v.size_bytes is not None else ""
            out.print(
                f"  [{STATE_STYLE[state]}]{STATE_SYMBOL[state]}[/] {_e(str(f.path))} [dim]({_e(f.how)})[/]{_e(arch + size)}"
            )
            for p in v.problems if v else ():
                out.print(f"      [red]{_e(p)}[/]")
    if hf_repos is not None:
        out.print("[bold]Hugging Face cache[/]")
        if not hf_repos:
            out.print("  [dim]no model repositories cached[/]")
        for r in hf_repos:
            out.print(
                f"  {_e(r['repo_id'])}  {human_bytes(r['size_on_disk'])}, {r['nb_files']} files  [dim]{_e(r['repo_path'])}[/]"
            )
    out.print("[dim]searched: " + _e(", ".join(f"{p.path} ({p.how})" for p in [*inv.places, *inv.caches])) + "[/]")


@contextlib.contextmanager
def hash_progress(enabled: bool) -> Iterator[tuple[Any, Any]]:
    """(on_hash_start, on_bytes) callbacks that drive a rich bar on stderr, on a terminal only."""
    if not enabled:
        yield None, None
        return
    progress = Progress(
        TextColumn("sha256"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task: list[Any] = []

    def start(total: int) -> None:
        task.append(progress.add_task("sha256", total=total))

    def advance(n: int) -> None:
        if task:
            progress.advance(task[0], n)

    with progress:
        yield start, advance


@contextlib.contextmanager
def download_progress(enabled: bool, name: str) -> Iterator[tuple[Any, Any]]:
    if not enabled:
        yield None, None
        return
    progress = Progress(
        TextColumn(escape(name)),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
    )
    task: list[Any] = []

    def start(total: int | None, have: int) -> None:
        if task:
            progress.update(task[0], total=total, completed=have)
        else:
            task.append(progress.add_task(name, total=total, completed=have))

    def advance(n: int) -> None:
        if task:
            progress.advance(task[0], n)

    with progress:
        yield start, advance
