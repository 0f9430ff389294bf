"""GitHub Actions: `::error` / `::warning` workflow commands and a step-summary table."""

from __future__ import annotations

import os
from collections.abc import Mapping

from otdoctor.engine.results import Report, Status
from otdoctor.redact import redact


def _escape_data(text: str) -> str:
    # The workflow-command encoding: %, CR and LF in the message.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(report: Report, strict: bool = False) -> str:
    lines = []
    for o in report.in_build_order():
        r = o.result
        if r.status in (Status.OK, Status.SKIP):
            continue
        level = "error" if o.is_failure(strict) else "warning"
        body = [r.summary]
        if r.expected:
            body.append(f"expected: {r.expected}")
        if r.fix:
            body.append(f"fix: {r.fix.summary}")
            body.extend(f"$ {c}" for c in r.fix.commands)
        title = f"otdoctor {o.check_id}"
        lines.append(f"::{level} title={_escape_prop(title)}::{_escape_data(redact(chr(10).join(body)))}")
    verdict = report.verdict(strict).sentence()
    lines.append(f"::notice title=otdoctor verdict::{_escape_data(redact(verdict))}")
    lines.append(f"otdoctor: {_counts(report)}")
    lines.append(f"otdoctor: {redact(verdict)}")
    return "\n".join(lines) + "\n"


def _counts(report: Report) -> str:
    c = report.counts()
    return f"{c['ok']} ok, {c['warn']} warnings, {c['fail']} failed, {c['error']} crashed, {c['skip']} skipped"


_ICON = {Status.OK: "✅", Status.WARN: "⚠️", Status.FAIL: "❌", Status.ERROR: "💥", Status.SKIP: "⏭️"}


def step_summary(report: Report, strict: bool = False) -> str:
    """A Markdown table for $GITHUB_STEP_SUMMARY: the verdict first, then every check in build order."""
    rows = ["## otdoctor check", "", f"**{report.verdict(strict).sentence()}**", ""]
    rows += ["| | check | result |", "|---|---|---|"]
    for o in report.in_build_order():
        text = o.result.summary.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {_ICON[o.status]} | `{o.check_id}` | {text} |")
    rows.append("")
    rows.append(_counts(report))
    return redact("\n".join(rows)) + "\n"


def append_step_summary(report: Report, env: Mapping[str, str] | None = None, strict: bool = False) -> None:
    """Add the table to $GITHUB_STEP_SUMMARY when set: appended, as every step of a job shares the file."""
    path = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(step_summary(report, strict))
