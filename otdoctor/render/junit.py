"""JUnit XML: one testcase per check, so GitLab, Jenkins and GitHub test reporters show them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from otdoctor.engine.results import Outcome, Report, Status
from otdoctor.redact import redact


def _message(o: Outcome) -> str:
    lines = [o.result.summary]
    if o.result.expected:
        lines.append(f"expected: {o.result.expected}")
    if o.result.why:
        lines.append(f"why: {o.result.why}")
    lines.extend(o.result.details)
    if o.result.fix:
        lines.append(f"fix: {o.result.fix.summary}")
        lines.extend(f"  $ {c}" for c in o.result.fix.commands)
    if o.traceback:
        lines.append(o.traceback)
    return redact("\n".join(lines))


def _verdict_properties(suite: ET.Element, report: Report, strict: bool) -> None:
    """The verdict as suite properties, which CI test reporters show beside the suite."""
    verdict = report.verdict(strict)
    props = ET.SubElement(suite, "properties")
    values = {"ready": "true" if verdict.ready else "false", "reason": verdict.reason, "next": verdict.next or ""}
    for name, value in values.items():
        ET.SubElement(props, "property", name=f"verdict.{name}", value=redact(value))


def render(report: Report, strict: bool = False) -> str:
    counts = report.counts()
    failures = sum(1 for o in report.outcomes if o.status is Status.FAIL or (strict and o.status is Status.WARN))
    suites = ET.Element("testsuites", name="otdoctor", tests=str(len(report.outcomes)))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="otdoctor check",
        tests=str(len(report.outcomes)),
        failures=str(failures),
        errors=str(counts["error"]),
        skipped=str(counts["skip"]),
        time=f"{report.duration_s:.3f}",
        hostname=redact(str(report.host.get("hostname", ""))),
    )
    _verdict_properties(suite, report, strict)
    for o in report.in_build_order():
        case = ET.SubElement(
            suite, "testcase", classname=f"otdoctor.{o.area}", name=o.check_id, time=f"{o.duration_s:.3f}"
        )
        summary = redact(o.result.summary)
        if o.status is Status.FAIL or (strict and o.status is Status.WARN):
            el = ET.SubElement(case, "failure", message=summary, type=o.status.value)
            el.text = _message(o)
        elif o.status is Status.ERROR:
            el = ET.SubElement(case, "error", message=summary, type="error")
            el.text = _message(o)
        elif o.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=summary)
        elif o.status is Status.WARN:
            out = ET.SubElement(case, "system-out")
            out.text = "WARNING: " + _message(o)
    # After the testcases, where the JUnit schema puts a suite's output.
    ET.SubElement(suite, "system-out").text = redact(report.verdict(strict).sentence())
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
