"""The `otdoctor check` job as a function: locate OneTrainer, pick checks, run them, make a Report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from otdoctor.engine.check import Check, Context, Options
from otdoctor.engine.registry import load_checks, select
from otdoctor.engine.results import Outcome, Report
from otdoctor.engine.runner import build_report, run_checks
from otdoctor.errors import UserError
from otdoctor.onetrainer.checkout import find_checkout
from otdoctor.probe import Probe


def make_context(
    probe: Probe,
    ot_dir: Path | None = None,
    config_path: Path | None = None,
    models_dirs: Iterable[Path] = (),
    offline: bool = False,
    require_gpu: bool = False,
) -> Context:
    if offline:
        go_offline(probe)
    located = find_checkout(probe, ot_dir)
    options = Options(
        ot_dir=located.path,
        ot_dir_source=located.source,
        config_path=config_path,
        models_dirs=tuple(models_dirs),
        offline=offline,
        require_gpu=require_gpu,
        extra={"ot_dir_tried": located.tried, "ot_dir_unreadable": located.unreadable},
    )
    return Context(probe, options)


# What `--offline` sets: huggingface_hub and transformers read these (at import), and so do the
# processes otdoctor starts (OneTrainer's venv Python, a smoke run), so none of them reaches out.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PIP_NO_INDEX": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def go_offline(probe: Probe) -> None:
    """Set the offline switches for this process and for every command the probe runs."""
    import os

    os.environ.update(OFFLINE_ENV)
    probe.env.update(OFFLINE_ENV)


def selected_checks(only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[Check]:
    checks, _errors = load_checks()
    try:
        return select(checks, only, skip)
    except ValueError as exc:
        raise UserError(str(exc), exit_code=2) from None


def run_doctor(
    ctx: Context,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
    on_done: Callable[[Outcome], None] | None = None,
) -> Report:
    started = time.perf_counter()
    checks = selected_checks(only, skip)
    outcomes = run_checks(checks, ctx, on_done=on_done)
    return build_report(outcomes, ctx, started)
