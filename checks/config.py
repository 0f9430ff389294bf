"""The training config against the guide's pitfalls: model type, dtypes, learning rates, concepts, disk.

Every config check looks at the config `otdoctor.onetrainer.config.config_facts` picked (`--config`,
else the UI's last-session state `training_presets/#.json`) and requires `config.file`, defined here,
which reports that choice and any load problem (malformed JSON becomes a FAIL finding, not an
aborted run). The other checks live by topic in config_model.py, config_training.py,
config_concepts.py and config_disk.py; `CHECKS` below is the area's order in every output.
"""

from __future__ import annotations

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.onetrainer.config import config_facts

from .config_common import CONFIG_FILE
from .config_concepts import Captions, ConceptPaths, Masks, RegBalancing
from .config_disk import Disk, Workspace
from .config_model import ModelType, OutputDtype, TrainDtype, VaeOverride
from .config_training import Ema, FusedBackPass, TextEncoderLr


class ConfigFile(Check):
    id = CONFIG_FILE
    title = "Training config"
    area = "config"

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = config_facts(ctx)
        if facts.path is None:
            return CheckResult.skip(
                "no training config found",
                details=("neither --config nor the UI's last-used state training_presets/#.json",),
                fix=Fix("name the config to check", ("otdoctor check --config path/to/config.json",)),
            )
        if facts.error is not None:
            return CheckResult.fail(
                facts.error,
                details=facts.problems,
                expected="a JSON object of OneTrainer settings"
                + (", each value one OneTrainer reads and a real run has" if facts.problems else ""),
                why="OneTrainer cannot load this config, so training does not start"
                if not facts.problems
                else "OneTrainer stops on a value it cannot read; an absurd one makes every figure here meaningless",
                fix=Fix(
                    "correct the "
                    + ("values named above" if facts.problems else "file at that line")
                    + ", or export the config again from the UI (top bar: Export)"
                ),
                data={"path": str(facts.path), "source": facts.source, "problems": list(facts.problems)},
            )
        cfg = facts.config
        assert cfg is not None
        kind = (
            f"full config, __version {cfg.version}"
            if not cfg.is_preset
            else "preset (no __version: partial, defaults for the rest)"
        )
        concepts = (
            f"{len(cfg.concepts)} concept(s) from {cfg.concepts_source}" if cfg.concepts_source else "no concepts"
        )
        summary = f"{facts.path} ({facts.source}; {kind}; {concepts})"
        data = {
            "path": str(facts.path),
            "source": facts.source,
            "version": cfg.version,
            "preset": cfg.is_preset,
            "model_type": cfg.model_type,
            "training_method": cfg.training_method,
            "warnings": list(cfg.warnings),
        }
        if cfg.warnings:
            return CheckResult.warn(
                summary,
                details=tuple(cfg.warnings),
                expected=f"keys and __version {cfg.version or 11} that OneTrainer writes",
                why="an unknown key is ignored by OneTrainer (a typo silently does nothing); "
                "a newer format may be read wrongly here",
                fix=Fix("export the config again from the OneTrainer UI, or correct the keys named above"),
                data=data,
            )
        return CheckResult.ok(summary, data=data)


CHECKS = [
    ConfigFile,
    ModelType,
    VaeOverride,
    OutputDtype,
    TrainDtype,
    TextEncoderLr,
    FusedBackPass,
    RegBalancing,
    ConceptPaths,
    Masks,
    Captions,
    Disk,
    Workspace,
    Ema,
]
