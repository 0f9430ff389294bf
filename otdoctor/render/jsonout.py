"""The versioned JSON report (`--format json`), validated by `otdoctor/data/report.schema.json`."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
from pathlib import Path
from typing import Any

from otdoctor.data import data_file
from otdoctor.engine.results import Outcome, Report
from otdoctor.redact import redact

SCHEMA_VERSION = 1
SCHEMA_PATH = data_file("report.schema.json")


def _plain(value: Any) -> Any:
    """Make check data JSON-safe: paths, enums, dataclasses, tuples, sets."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def outcome_dict(o: Outcome) -> dict[str, Any]:
    r = o.result
    return {
        "id": o.check_id,
        "title": o.title,
        "area": o.area,
        "required": o.required,
        "status": r.status.value,
        "summary": r.summary,
        "expected": r.expected,
        "why": r.why,
        "fix": None
        if r.fix is None
        else {"summary": r.fix.summary, "commands": list(r.fix.commands), "automatic": r.fix.automatic}
        | ({"instead": {"summary": i.summary, "commands": list(i.commands)}} if (i := r.fix.instead) else {}),
        "details": list(r.details),
        "data": _plain(dict(r.data)),
        "duration_s": round(o.duration_s, 4),
        "can_fix": o.can_fix,
        "traceback": o.traceback,
    }


def report_dict(report: Report, strict: bool = False) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "otdoctor_version": report.otdoctor_version,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": _plain(dict(report.host)),
        "ot_dir": report.ot_dir,
        "duration_s": round(report.duration_s, 4),
        "summary": {**report.counts(), "exit_code": report.exit_code(strict), "strict": strict},
        "verdict": dataclasses.asdict(report.verdict(strict)),
        "checks": [outcome_dict(o) for o in report.outcomes],
    }


def render(report: Report, strict: bool = False) -> str:
    return redact(json.dumps(report_dict(report, strict), indent=2, ensure_ascii=False)) + "\n"


def dumps(value: Any) -> str:
    """JSON for other commands' `--format json` (gpu, estimate, models): same plain conversion, redacted."""
    return redact(json.dumps(_plain(value), indent=2, ensure_ascii=False)) + "\n"
