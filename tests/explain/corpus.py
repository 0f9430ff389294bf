"""The explain corpus in tests/data/explain: logs of the known problems and healthy runs.

problems/<problem-id>[.<variant>].log is OneTrainer output showing that problem (the file name is
the manifest); healthy/*.log is output of runs and installs that went well.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "explain"
PROBLEM_LOGS = sorted((CORPUS / "problems").glob("*.log"))
HEALTHY_LOGS = sorted((CORPUS / "healthy").glob("*.log"))


def problem_id(log: Path) -> str:
    return log.name.split(".")[0]


def read(log: Path) -> str:
    return log.read_text(encoding="utf-8")
