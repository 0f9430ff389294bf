"""`otdoctor smoke` as one call: check the request and the gates, run, save the result, judge it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from otdoctor.smoke import SmokeRequest, check_request, run_smoke
from otdoctor.smoke import results as smoke_results
from otdoctor.smoke.gates import Gates, failures
from otdoctor.smoke.results import SmokeResult
from otdoctor.smoke.run import Progress


class SmokeUI(Protocol):
    """What the user sees while the run goes: a live status (None: none), notices, start and end."""

    @property
    def progress(self) -> Progress | None: ...
    def started(self) -> None: ...
    def notice(self, line: str) -> None: ...
    def finished(self) -> None: ...


@dataclass(frozen=True)
class SmokeOutcome:
    result: SmokeResult
    saved_to: Path
    why: list[str]  # why this mode
    failures: list[str]  # the run's error, then each CI gate it misses (empty: it passes)


def run_job(request: SmokeRequest, gates: Gates, ui: SmokeUI) -> SmokeOutcome:
    request = check_request(request)  # usage errors before the "running" line, so they stay one line
    gates = gates.check()
    ui.started()
    result, why = run_smoke(request, ui.progress, notice=ui.notice)
    ui.finished()
    found = failures(result, gates)
    return SmokeOutcome(result, smoke_results.save(result), why, found)
