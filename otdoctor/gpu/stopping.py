"""Which processes holding VRAM `otdoctor fix gpu.vram` may stop, and why it spares the others.

Only a process NVML lists as a *compute* process on the training GPU is a candidate (a training
run, a forgotten ComfyUI or notebook kernel). Never stopped: a graphics process (it draws the
screen), a process that is part of the desktop session (display server, compositor, browser; the
table `spared_processes.toml`), otdoctor itself or any process above it (the shell and terminal it
runs in), another user's process, one this machine cannot see. The probe re-checks each
candidate's identity (PID, start time, command line) right before its signal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from otdoctor.data import load_table
from otdoctor.gpu.reasoning import HolderRow
from otdoctor.probe.processes import ProcessDetails
from otdoctor.probe.processes import lineage as own_lineage


@dataclass(frozen=True)
class Verdict:
    """One process holding VRAM and whether it may be stopped: `spared` says why not (None: it may)."""

    row: HolderRow
    spared: str | None = None

    @property
    def pid(self) -> int:
        return self.row.process.pid

    @property
    def details(self) -> ProcessDetails:
        return self.row.details

    @property
    def stoppable(self) -> bool:
        return self.spared is None


def desktop_kind(details: ProcessDetails) -> str | None:
    """The label of the desktop-session kind this process is (display server, browser...), or None."""
    names = {_plain(details.name)}
    if details.cmdline:
        names.add(_plain(details.cmdline[0].replace("\\", "/").rsplit("/", 1)[-1]))
    names.discard("")
    for kind in load_table("spared_processes.toml")["kind"]:
        if any(fnmatchcase(name, pattern) for name in names for pattern in kind["names"]):
            return str(kind["label"])
    return None


def _plain(name: str | None) -> str:
    name = (name or "").strip().lower()
    return name[: -len(".exe")] if name.endswith(".exe") else name


def _spared_because(row: HolderRow, graphics_pids: Collection[int], lineage: Collection[int]) -> str | None:
    d = row.details
    if not d.visible:
        return "not visible here (another PID namespace, or a machine recorded elsewhere)"
    if not d.owned_by_current_user:
        user = d.user or "another user"
        return f"belongs to {user}: ask {user} (or an administrator) to stop it"
    if row.process.pid in lineage:
        return "otdoctor itself, or the shell or terminal it runs in"
    desktop = desktop_kind(d)
    if desktop is not None:
        return desktop
    if row.process.kind != "compute" or row.process.pid in graphics_pids:
        return "a graphics process (it draws on the screen): close its window yourself"
    return None


def judge(rows: Iterable[HolderRow], lineage: Collection[int] | None = None) -> list[Verdict]:
    """Each holder once (a PID NVML lists as compute and graphics is one process), with its verdict."""
    rows = list(rows)
    lineage = own_lineage() if lineage is None else lineage
    graphics = {r.process.pid for r in rows if r.process.kind != "compute"}
    seen: set[int] = set()
    verdicts: list[Verdict] = []
    for row in rows:
        if row.process.pid in seen:
            continue
        seen.add(row.process.pid)
        verdicts.append(Verdict(row, _spared_because(row, graphics, lineage)))
    return verdicts


def kill_command(v: Verdict, force: bool) -> str:
    """The shell line that does what the fix will do to this process."""
    pid = v.pid
    return f"kill {pid}" + (f"; sleep 10; kill -0 {pid} 2>/dev/null && kill -9 {pid}" if force else "")


def hand_commands(verdicts: Iterable[Verdict]) -> list[str]:
    """What the user can paste: `kill` for each process otdoctor may stop, a note for the others here."""
    verdicts = [v for v in verdicts if v.details.visible]
    lines = [f"kill {v.pid}   # {v.details.name}" for v in verdicts if v.stoppable]
    lines += [f"# {spared_line(v)}" for v in verdicts if v.spared and v.details.owned_by_current_user]
    lines += [
        f"# ask {v.details.user} to stop PID {v.pid} ({v.details.name})"
        for v in verdicts
        if not v.details.owned_by_current_user
    ]
    return lines


def spared_line(v: Verdict) -> str:
    name = v.details.name or "?"
    return f"spared: PID {v.pid} ({name}): {v.spared}"


__all__ = ["Verdict", "desktop_kind", "hand_commands", "judge", "kill_command", "spared_line"]
