"""`otdoctor smoke` as one call: usage errors come before anything is shown or run."""

from __future__ import annotations

import pytest

from otdoctor.errors import UserError
from otdoctor.smoke import SmokeRequest
from otdoctor.smoke.gates import Gates
from otdoctor.smoke.job import run_job


class _Recorder:
    """A UI that records what the job tells it."""

    progress = None

    def __init__(self) -> None:
        self.seen: list[str] = []

    def started(self) -> None:
        self.seen.append("started")

    def notice(self, line: str) -> None:
        self.seen.append(line)

    def finished(self) -> None:
        self.seen.append("finished")


@pytest.mark.parametrize(
    ("request_", "gates", "message"),
    [
        (SmokeRequest(steps=0), Gates(min_its=0), "--steps must be >= 1 and --warmup >= 0"),
        (SmokeRequest(overrides=("novalue",)), Gates(), "--set wants KEY=VALUE (got 'novalue')"),
        (SmokeRequest(), Gates(max_vram_gb=-1), "--max-vram-gb must be a positive number, got -1"),
    ],
)
def test_usage_errors_before_the_run_starts(request_, gates, message):
    ui = _Recorder()
    with pytest.raises(UserError) as err:
        run_job(request_, gates, ui)
    assert err.value.message == message and err.value.exit_code == 2
    assert ui.seen == []
