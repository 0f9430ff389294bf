"""What the system checks share: their thresholds (otdoctor/data/system.toml), the model family a
model_type is measured as, the run's training config, and the SKIP without a checkout."""

from __future__ import annotations

from typing import Any

from otdoctor.data import load_table
from otdoctor.engine.check import Context
from otdoctor.engine.results import CheckResult
from otdoctor.onetrainer.config import TrainConfig


def thresholds() -> dict[str, Any]:
    return load_table("system.toml")


def family(model_type: str) -> str:
    """ "sd15" or "sdxl": which figures of system.toml measure this model_type."""
    mt = model_type.upper()
    if any(name in mt for name in thresholds()["families"]["sd15_model_types"]):
        return "sd15"
    return "sdxl"


def run_config(ctx: Context) -> tuple[TrainConfig | None, str | None]:
    """The run's training config (--config, else the UI's last-used state), shared with the config
    checks through `config_facts`; (TrainConfig or None, a note when it could not be read)."""
    from otdoctor.onetrainer.config import config_facts

    facts = config_facts(ctx)
    if facts.error is not None:
        return None, f"config {facts.path} not read ({facts.error})"
    return facts.config, None


def no_checkout() -> CheckResult:
    return CheckResult.skip("no OneTrainer checkout to look at (see onetrainer.checkout)")
