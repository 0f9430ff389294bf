"""Real processes for the GPU tests: NVML is replayed, the processes it lists are real."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest


@pytest.fixture
def children():
    """Start real processes of this user; every one is stopped and reaped at teardown.

    `ready_line`: wait until the child prints "ready" (text mode); other keywords go to Popen.
    """
    started: list[subprocess.Popen] = []

    def start(argv: list[str], ready_line: bool = False, **kw: Any) -> subprocess.Popen:
        opts: dict[str, Any] = (
            {"stdout": subprocess.PIPE, "text": True} if ready_line else {"stdout": subprocess.DEVNULL}
        )
        p = subprocess.Popen(argv, **{**opts, **kw})
        started.append(p)
        if ready_line:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
