"""The whole `otdoctor install`: pre-flight, plan, confirmation, the phases, then the final check.

This module decides what comes next; the front end (the CLI's `InstallView`) only shows each
stage as it comes and answers the one question. A dry run stops after the plan; a declined
confirmation stops before anything is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from otdoctor.install.installer import Installer, InstallOptions, final_check
from otdoctor.install.plan import PlanStep
from otdoctor.install.session import PHASE_TITLES, InstallUI
from otdoctor.install.state import PHASES
from otdoctor.probe import Probe
from otdoctor.probe.locks import resource_lock

if TYPE_CHECKING:
    from otdoctor.engine.results import Report

# The phases, then the final `otdoctor check`: what the front end numbers its stages against.
STAGE_COUNT = len(PHASES) + 1


class InstallFrontend(InstallUI, Protocol):
    def show_intro(self, inst: Installer, ref: str | None, warnings: Sequence[str]) -> None: ...
    def show_plan(self, steps: Sequence[PlanStep], ot_dir: Path) -> None: ...
    def fail(self) -> None: ...


@dataclass(frozen=True)
class InstallResult:
    """How the install ended: a dry run, a declined confirmation, or the final check's report."""

    dir: Path
    dry_run: bool = False
    declined: bool = False
    report: Report | None = None

    @property
    def exit_code(self) -> int:
        if self.report is not None:
            return self.report.exit_code()
        return 1 if self.declined else 0


def run_install(opts: InstallOptions, ui: InstallFrontend, probe: Probe | None = None) -> InstallResult:
    """Refuse early (pre-flight), show the plan, ask, run the phases not yet done, then check.

    A real install holds the venv's lock from the pre-flight to the final check: a second install
    or fix into the same venv is refused at once, naming this one's pid (a dry run only looks).
    """
    probe = probe or Probe()
    inst = Installer(probe, opts, ui)
    if opts.dry_run:
        return _run(inst, ui, probe)
    with resource_lock(inst.venv, f"installing into {inst.venv}", probe.env):
        return _run(inst, ui, probe)


def _run(inst: Installer, ui: InstallFrontend, probe: Probe) -> InstallResult:
    opts = inst.opts
    ui.show_intro(inst, opts.ref, inst.preflight())
    steps = inst.plan()
    ui.show_plan(steps, inst.dir)
    if opts.dry_run:
        return InstallResult(inst.dir, dry_run=True)
    if not all(s.done for s in steps) and not ui.confirm("Go ahead?"):
        return InstallResult(inst.dir, declined=True)
    try:
        inst.run()
    except BaseException:
        ui.fail()
        raise
    ui.phase("check", PHASE_TITLES["check"])
    return InstallResult(inst.dir, report=final_check(probe, inst.dir))
