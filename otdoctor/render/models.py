"""Text output and progress bars for `otdoctor models list|verify|download`."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from otdoctor.checkpoints.catalog import CatalogEntry
from otdoctor.checkpoints.hf_cache import HfCacheRepo
from otdoctor.checkpoints.inventory import Inventory
from otdoctor.checkpoints.verify import Verdict
from otdoctor.oneline import one_line, shell_quote
from otdoctor.redact import redact
from otdoctor.render.emit import Destination, Draw
from otdoctor.render.units import human_bytes

STATE_STYLE = {"verified": "green", "ok": "green", "warning": "yellow", "bad": "red", "not found": "dim"}
KIND_LABEL = {"diffusers": "diffusers folder", "not-a-model": "not safetensors", "pickle": "pickle"}
STATE_SYMBOL = {"verified": "✓", "ok": "✓", "warning": "!", "bad": "✗", "not found": "-"}


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _e(text: str) -> str:
    return escape(redact(one_line(text)))


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
            f"      [dim]fix:[/] mv {_e(shell_quote(str(v.path)))} {_e(shell_quote(str(v.path) + '.bad'))} && "
            f"{_e(v.entry.download_command)} --dest {_e(shell_quote(str(v.path.parent)))}"
        )
    return lines


def render_verdicts(verdicts: list[Verdict], out: Console, how: dict[Path, str] | None = None) -> None:
    how = how or {}
    for v in verdicts:
        for line in verdict_lines(v, how.get(v.path)):
            out.print(line)
    bad = sum(1 for v in verdicts if v.problems)
    out.print(f"\n{len(verdicts)} checked: {len(verdicts) - bad} good, {bad} bad" if verdicts else "nothing to verify")


def _state(v: Verdict | None) -> str:
    return v.state if v else "ok"


def _mark(state: str) -> str:
    return f"[{STATE_STYLE[state]}]{STATE_SYMBOL[state]}[/]"


def _problem_lines(v: Verdict | None, indent: str) -> list[str]:
    return [f"{indent}[red]{_e(p)}[/]" for p in (v.problems if v else ())]


def _copy_label(v: Verdict | None) -> str:
    state = _state(v)
    if state == "ok" and v is not None and v.entry is not None and not v.matched:
        return "complete, sha256 not checked yet (otdoctor models verify)"
    return {"verified": "verified", "warning": "warning", "bad": "bad", "ok": "ok"}[state]


def _entry_lines(inv: Inventory, e: CatalogEntry) -> list[str]:
    origin = "" if e.origin == "built-in" else f" [dim](from {_e(e.origin)})[/]"
    lines = [f"  [bold]{_e(e.name)}[/]  {_e(e.title)}, {_e(e.architecture)}, {_e(e.where)}{origin}"]
    copies = inv.found.get(e.name) or []
    partials = inv.partials.get(e.name, [])
    for part in partials:
        lines.append(
            f"      [yellow]![/] {_e(str(part.path))}: interrupted download, {human_bytes(_size(part.path))} so far   "
            f"[dim]resume:[/] {_e(inv.resume_command(e.name) or '')}"
        )
    if not copies and not partials:
        lines.append(f"      [dim]-[/] not found   [dim]get it:[/] {_e(e.download_command)}")
    for f in copies:
        v = inv.verdicts.get(f.path)
        lines.append(f"      {_mark(_state(v))} {_e(str(f.path))} [dim]({_e(f.how)})[/]: {_e(_copy_label(v))}")
        lines += _problem_lines(v, "          ")
    return lines


def _base_lines(inv: Inventory) -> list[str]:
    b = inv.base
    if b is None:
        return []
    if b.path is None:
        return ["[bold]Config base model[/]", f"  [red]✗[/] {_e(b.value)}: not found"]
    v = inv.verdicts.get(b.path)
    arch = f", {v.architecture}" if v and v.architecture else ""
    return [
        "[bold]Config base model[/]",
        f"  {_mark(_state(v))} {_e(b.value)} -> {_e(str(b.path))}{_e(arch)}",
        *_problem_lines(v, "      "),
    ]


def _other_lines(inv: Inventory) -> list[str]:
    lines = ["[bold]Other model files[/]"] if inv.others else []
    for f in inv.others:
        v = inv.verdicts.get(f.path)
        arch = f", {v.architecture}" if v and v.architecture else ""
        size = f", {human_bytes(v.size_bytes)}" if v and v.size_bytes is not None else ""
        lines.append(f"  {_mark(_state(v))} {_e(str(f.path))} [dim]({_e(f.how)})[/]{_e(arch + size)}")
        lines += _problem_lines(v, "      ")
    return lines


def _hf_lines(hf_repos: Sequence[HfCacheRepo] | None) -> list[str]:
    if hf_repos is None:
        return []
    lines = ["[bold]Hugging Face cache[/]"]
    if not hf_repos:
        lines.append("  [dim]no model repositories cached[/]")
    for r in hf_repos:
        lines.append(
            f"  {_e(r.repo_id)}  {human_bytes(r.size_on_disk)}, {r.nb_files} files  [dim]{_e(str(r.repo_path))}[/]"
        )
    return lines


def render_list(inv: Inventory, out: Console, hf_repos: Sequence[HfCacheRepo] | None = None) -> None:
    lines = ["[bold]Catalog[/]"]
    for e in inv.catalog:
        lines += _entry_lines(inv, e)
    lines += _base_lines(inv) + _other_lines(inv) + _hf_lines(hf_repos)
    lines += [f"[yellow]![/] {_e(u)}" for u in inv.unreadable]
    lines.append("[dim]searched: " + _e(", ".join(f"{p.path} ({p.how})" for p in [*inv.places, *inv.caches])) + "[/]")
    for line in lines:
        out.print(line)


def _json_text(data: Any) -> str:
    return redact(json.dumps(data, indent=1)) + "\n"


def list_dict(inv: Inventory, hf_repos: Sequence[HfCacheRepo] | None = None) -> dict[str, Any]:
    """`models list --format json`: the catalog with where each entry was found, other files, the HF cache."""

    def found(e: CatalogEntry) -> list[dict[str, Any]]:
        return [
            {"path": str(f.path), "how": f.how, **(inv.verdicts[f.path].as_dict() if f.path in inv.verdicts else {})}
            for f in inv.found.get(e.name, [])
        ]

    return {
        "catalog": [
            {
                "name": e.name,
                "title": e.title,
                "architecture": e.architecture,
                "source": e.source,
                "where": e.where,
                "origin": e.origin,
                "download": e.download_command,
                "found": found(e),
            }
            for e in inv.catalog
        ],
        "others": [inv.verdicts[f.path].as_dict() for f in inv.others if f.path in inv.verdicts],
        "unreadable": inv.unreadable,
        "hf_cache_repos": None
        if hf_repos is None
        else [
            {
                "repo_id": r.repo_id,
                "size_on_disk": r.size_on_disk,
                "nb_files": r.nb_files,
                "repo_path": str(r.repo_path),
            }
            for r in hf_repos
        ],
    }


@dataclass(frozen=True)
class ModelsListView:
    """`otdoctor models list`: the inventory, and with --all the Hugging Face cache's repositories."""

    inventory: Inventory
    hf_repos: Sequence[HfCacheRepo] | None = None

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        render_list(self.inventory, dest.console(), self.hf_repos)

    def _json(self, dest: Destination) -> None:
        dest.write(_json_text(list_dict(self.inventory, self.hf_repos)))


@dataclass(frozen=True)
class VerdictsView:
    """`otdoctor models verify`: one verdict per file, with how each file was found."""

    verdicts: Sequence[Verdict]
    how: Mapping[Path, str] = field(default_factory=dict)

    @classmethod
    def of_inventory(cls, verdicts: Sequence[Verdict], inv: Inventory) -> VerdictsView:
        """Verdicts labelled with how the inventory found each file (a folder, the config, a cache)."""
        how: dict[Path, str] = {f.path: f.how for copies in inv.found.values() for f in copies}
        how.update({f.path: f.how for f in inv.others})
        return cls(verdicts, how)

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        render_verdicts(list(self.verdicts), dest.console(), dict(self.how))

    def _json(self, dest: Destination) -> None:
        dest.write(_json_text([v.as_dict() for v in self.verdicts]))


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
