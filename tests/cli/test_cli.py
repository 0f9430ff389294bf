"""`otdoctor check` through the real console script: text, JSON, JUnit, GitHub, files, exit codes.

Checks in every status come from a real third-party plugin wheel (tests/demo_plugin.py) installed
with `pip install --target` and put on PYTHONPATH, exactly as a user's plugin would load.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
from importlib import metadata, resources
from pathlib import Path

import jsonschema
import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from tests.support.demo_plugin import demo_plugin  # noqa: F401 - session fixture
from tests.support.factory import make_onetrainer, otdoctor_exe

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def ot(tmp_path: Path) -> Path:
    return make_onetrainer(tmp_path / "Projects" / "OneTrainer")


@pytest.fixture
def plugin_env(demo_plugin: Path) -> dict[str, str]:  # noqa: F811
    return {"PYTHONPATH": str(demo_plugin)}


def schema() -> dict:
    return json.loads(resources.files("otdoctor.data").joinpath("report.schema.json").read_text(encoding="utf-8"))


def validate(report: dict) -> None:
    cls = jsonschema.validators.validator_for(schema())
    cls(schema(), format_checker=cls.FORMAT_CHECKER).validate(report)


# Text ----------------------------------------------------------------------------------------------
def test_text_is_grouped_by_area_with_symbols_details_and_a_summary(run_cli, ot, plugin_env, base_env):
    env = {**plugin_env, "TERM": "xterm-256color"}
    # NO_COLOR removed: only the missing terminal keeps colour out.
    proc = subprocess.run(
        [otdoctor_exe(), "check", "--ot-dir", str(ot), "--only", "onetrainer.checkout", "--only", "demo"],
        env={**{k: v for k, v in base_env.items() if k != "NO_COLOR"}, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1
    assert not ANSI.search(out) and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == f"otdoctor {metadata.version('otdoctor')} · OneTrainer: {ot}"
    assert lines.count("onetrainer") == 1 and lines.count("demo") == 1
    assert lines.index("onetrainer") < lines.index(
        "  ✓ OneTrainer checkout (onetrainer.checkout): " + f"{ot} (from --ot-dir)"
    )
    demo = lines[lines.index("demo") :]
    # Problems first within an area (crashed, failed, warning, then ok); dependency skips fold
    # into one line after the areas.
    order = [
        "  ‼ Demo crash (demo.crash): the check crashed: RuntimeError: demo exploded",
        "  ✗ Demo broken (demo.broken): it is broken",
        "  ! Demo meh (demo.meh): a little off",
        "  ✓ Demo fine (demo.fine): all good",
    ]
    assert [demo.index(line) for line in order] == sorted(demo.index(line) for line in order)
    assert "Demo child" not in out
    assert "- 1 check skipped: 1 need demo.broken (--verbose lists them)" in lines
    # A non-OK check says what was expected, why, and what to run.
    broken = demo.index("  ✗ Demo broken (demo.broken): it is broken")
    assert demo[broken + 1 : broken + 6] == [
        "      part A missing",
        "      expected: it works",
        "      why: nothing runs without it",
        "      fix: repair it",
        "        demo repair --all",
    ]
    assert re.fullmatch(r"checks: 3 ok, 1 warnings, 1 failed, 1 crashed, 1 skipped in \d+\.\d\d s", lines[-2])
    # The first blocking finding in build order (onetrainer before plugin areas) decides the verdict.
    assert lines[-1] == (
        "not ready: demo.crash: the check crashed: RuntimeError: demo exploded"
        " -> otdoctor check --only demo.crash --verbose"
    )
    assert "Traceback" not in out  # only under --verbose


def test_colour_only_on_a_terminal(ot, plugin_env, base_env):
    env = {**{k: v for k, v in base_env.items() if k != "NO_COLOR"}, **plugin_env, "TERM": "xterm-256color"}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [otdoctor_exe(), "check", "--ot-dir", str(ot), "--only", "demo.fine", "--only", "demo.broken"],
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 1
    raw = b"".join(chunks).decode()
    assert ANSI.search(raw), raw
    plain = ANSI.sub("", raw)
    assert "✗ Demo broken (demo.broken): it is broken" in plain
    assert "checks: 1 ok, 1 failed" in plain and "not ready: Demo broken: it is broken -> demo repair --all" in plain


def test_verbose_shows_a_crashed_checks_traceback_and_the_run_goes_on(run_cli, plugin_env):
    quiet = run_cli("check", "--only", "demo.crash", "--only", "demo.fine", env=plugin_env)
    loud = run_cli("check", "--only", "demo.crash", "--only", "demo.fine", "--verbose", env=plugin_env)
    for proc in (quiet, loud):
        assert proc.returncode == 1
        assert "✓ Demo fine (demo.fine): all good" in proc.stdout  # the crash did not abort the run
        assert "‼ Demo crash (demo.crash): the check crashed: RuntimeError: demo exploded" in proc.stdout
    assert "Traceback" not in quiet.stdout
    assert "Traceback (most recent call last):" in loud.stdout
    assert "otdoctor_demo_plugin/checks.py" in loud.stdout and 'raise RuntimeError("demo exploded")' in loud.stdout


# JSON ----------------------------------------------------------------------------------------------
def test_json_validates_against_the_shipped_schema(run_cli, ot, plugin_env):
    proc = run_cli("check", "--ot-dir", str(ot), "--format", "json", env=plugin_env)
    report = json.loads(proc.stdout)
    validate(report)
    assert report["schema_version"] == 1 and report["ot_dir"] == str(ot)
    checks = {c["id"]: c for c in report["checks"]}
    assert {checks[i]["status"] for i in ("demo.fine", "demo.meh", "demo.broken", "demo.crash", "demo.child")} == {
        "ok",
        "warn",
        "fail",
        "error",
        "skip",
    }
    assert checks["demo.broken"]["fix"] == {
        "summary": "repair it",
        "commands": ["demo repair --all"],
        "automatic": False,
    }
    assert "RuntimeError: demo exploded" in checks["demo.crash"]["traceback"]
    assert checks["system.disk"]["data"]["filesystems"][0]["free_bytes"] > 0
    counts = {s: sum(1 for c in report["checks"] if c["status"] == s) for s in ("ok", "warn", "fail", "error", "skip")}
    assert {k: report["summary"][k] for k in counts} == counts
    assert report["summary"]["exit_code"] == proc.returncode == 1


def test_json_of_builtin_checks_alone_validates_and_schema_rejects_a_broken_report(run_cli, ot):
    proc = run_cli("check", "--ot-dir", str(ot), "--format", "json")
    report = json.loads(proc.stdout)
    validate(report)
    assert report["summary"]["exit_code"] == proc.returncode
    report["checks"][0]["status"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        validate(report)


# JUnit ---------------------------------------------------------------------------------------------
def test_junit_has_one_testcase_per_check_with_failure_error_and_skipped(run_cli, ot, plugin_env):
    junit = run_cli("check", "--ot-dir", str(ot), "--format", "junit", env=plugin_env)
    as_json = json.loads(run_cli("check", "--ot-dir", str(ot), "--format", "json", env=plugin_env).stdout)
    assert junit.returncode == 1
    xml = JUnitXml.fromstring(junit.stdout)
    cases = {case.name: case for suite in xml for case in suite}
    assert sorted(cases) == sorted(c["id"] for c in as_json["checks"])
    kinds = {name: [type(r) for r in case.result] for name, case in cases.items()}
    assert kinds["demo.fine"] == [] and kinds["demo.meh"] == []
    assert kinds["demo.broken"] == [Failure]
    assert kinds["demo.crash"] == [Error]
    assert kinds["demo.child"] == [Skipped]
    failure = cases["demo.broken"].result[0]
    assert failure.message == "it is broken" and "demo repair --all" in failure.text
    assert cases["demo.broken"].classname == "otdoctor.demo"

    strict = JUnitXml.fromstring(
        run_cli("check", "--only", "demo.meh", "--format", "junit", "--strict", env=plugin_env).stdout
    )
    (meh,) = [case for suite in strict for case in suite]
    assert [type(r) for r in meh.result] == [Failure]


# GitHub --------------------------------------------------------------------------------------------
def test_github_annotations_and_step_summary_appended(run_cli, tmp_path, plugin_env):
    summary = tmp_path / "step-summary.md"
    summary.write_text("previous step's summary\n")
    args = ("check", "--only", "demo", "--format", "github")
    proc = run_cli(*args, env={**plugin_env, "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert (
        "::error title=otdoctor demo.broken::it is broken%0Aexpected: it works%0Afix: repair it%0A$ demo repair --all"
        in lines
    )
    assert any(
        line.startswith("::error title=otdoctor demo.crash::the check crashed: RuntimeError: demo exploded")
        for line in lines
    )
    assert any(line.startswith("::warning title=otdoctor demo.meh::a little off") for line in lines)
    assert not any("demo.fine" in line or "demo.child" in line for line in lines if line.startswith("::"))
    text = summary.read_text()
    assert text.startswith("previous step's summary\n## otdoctor check\n")
    assert "| | check | result |" in text
    assert "| ❌ | `demo.broken` | it is broken |" in text
    assert "| ✅ | `demo.fine` | all good |" in text
    assert "| ⏭️ | `demo.child` | skipped because demo.broken: it is broken |" in text
    # Appended, not replaced: a second run adds a second table.
    run_cli(*args, env={**plugin_env, "GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text().count("## otdoctor check") == 2
    assert summary.read_text().startswith("previous step's summary\n")


def test_github_without_step_summary_writes_no_file(run_cli, tmp_path, plugin_env):
    proc = run_cli("check", "--only", "demo.meh", "--format", "github", env=plugin_env)
    assert proc.returncode == 0  # a warning alone is healthy
    assert proc.stdout.startswith("::warning title=otdoctor demo.meh::")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".md") == []


# --output ------------------------------------------------------------------------------------------
def test_output_file_for_text_and_json(run_cli, tmp_path, plugin_env):
    text_file = tmp_path / "report.txt"
    proc = run_cli("check", "--only", "demo.fine", "--only", "demo.broken", "--output", str(text_file), env=plugin_env)
    assert proc.returncode == 1 and proc.stdout == ""
    text = text_file.read_text()
    assert "✗ Demo broken (demo.broken): it is broken" in text and "\x1b" not in text
    assert re.search(
        r"\nchecks: 1 ok, 1 failed in \d+\.\d\d s\nnot ready: Demo broken: it is broken -> demo repair --all\n$", text
    )

    json_file = tmp_path / "out" / "report.json"
    json_file.parent.mkdir()
    proc = run_cli("check", "--only", "demo.fine", "--format", "json", "-o", str(json_file), env=plugin_env)
    assert proc.returncode == 0 and proc.stdout == ""
    report = json.loads(json_file.read_text())
    validate(report)
    assert [c["id"] for c in report["checks"]] == ["demo.fine"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_output_into_a_missing_folder_is_one_line_error(run_cli, tmp_path, plugin_env, fmt):
    target = tmp_path / "nosuch" / "report.out"
    proc = run_cli("check", "--only", "demo.fine", "--format", fmt, "-o", str(target), env=plugin_env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"otdoctor: error: cannot write --output {target}: No such file or directory"
    assert not target.parent.exists()


# Exit codes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--only", "demo.fine"), 0),
        (("--only", "demo.meh"), 0),
        (("--only", "demo.meh", "--strict"), 1),
        (("--only", "demo.broken"), 1),
        (("--only", "demo.crash"), 1),
        (("--only", "demo", "--skip", "demo.broken", "--skip", "demo.crash", "--skip", "demo.meh"), 0),
    ],
)
def test_exit_codes_follow_the_worst_result(run_cli, plugin_env, args, code):
    proc = run_cli("check", *args, env=plugin_env)
    assert proc.returncode == code, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bogus",), "No such option: --bogus"),
        (("--only", "nosuch.check"), "otdoctor: error: no check matches 'nosuch.check'"),
        (("--skip", "nosuch"), "otdoctor: error: no check matches 'nosuch'"),
        (("--format", "yaml"), "otdoctor: error: unknown --format 'yaml'; choose one of text, json, junit, github"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(run_cli, args, message):
    proc = run_cli("check", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_ctrl_c_exits_130(base_env, tmp_path, plugin_env):
    proc = subprocess.Popen(
        [otdoctor_exe(), "check", "--only", "demo.slow", "--only", "demo.fine"],
        env={**base_env, **plugin_env, "DEMO_SLOW": "1"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr.readline() == "demo.slow started\n"  # the check is running now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "otdoctor: interrupted" in err and "Traceback" not in err


# --list, --version ---------------------------------------------------------------------------------
def _table(text: str) -> dict[str, dict[str, str]]:
    """Rows of the --list table, cut at the header's column starts."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    names = header.split()
    starts = [header.index(n) for n in names]
    rows = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None], strict=False)]
        rows[cells[0]] = dict(zip(names, cells, strict=False))
    return rows


def test_list_shows_every_check_with_area_required_and_fix(run_cli, plugin_env):
    from otdoctor.engine.registry import load_checks

    proc = run_cli("check", "--list", env=plugin_env)
    assert proc.returncode == 0
    assert proc.stdout.split()[:5] == ["id", "area", "title", "required", "fix"]
    rows = _table(proc.stdout)
    builtins, _ = load_checks(include_plugins=False)
    for check in builtins:
        row = rows[check.id]
        assert (row["area"], row["title"]) == (check.area, check.title)
        assert row["required"] == ("yes" if check.required else "no")
        assert row["fix"] == ("yes" if check.can_fix() else "")
    assert rows["system.memory"]["required"] == "no" and rows["system.disk"]["required"] == "yes"
    assert rows["demo.slow"] == {"id": "demo.slow", "area": "demo", "title": "Demo slow", "required": "yes", "fix": ""}
    only = _table(run_cli("check", "--list", "--only", "system", env=plugin_env).stdout)
    assert sorted(only) == ["system.disk", "system.git", "system.memory", "system.path", "system.platform"]


def test_version(run_cli):
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"otdoctor {metadata.version('otdoctor')}\n"


# The verdict ---------------------------------------------------------------------------------------
def test_no_onetrainer_says_not_ready_last_in_build_order_with_skips_folded(run_cli):
    proc = run_cli("check")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0  # nothing required failed: CI meaning unchanged
    assert lines[-1] == "not ready: OneTrainer is not installed (no checkout found) -> otdoctor install"
    areas = [line for line in lines if line in ("system", "python", "onetrainer", "gpu", "models", "config")]
    assert areas == ["system", "python", "onetrainer", "gpu", "models", "config"]
    # Everything that waits on the missing checkout or config is one line, after the areas.
    (folded,) = [line for line in lines if " checks skipped: " in line]
    assert "need onetrainer.checkout" in folded and "need config.file" in folded
    assert lines.index(folded) > lines.index("config")
    assert "venv" not in lines and "dataset" not in lines  # nothing but skips there


def test_every_format_carries_the_same_verdict(run_cli, ot, plugin_env):
    args = ("check", "--ot-dir", str(ot), "--only", "onetrainer", "--only", "gpu", "--only", "demo.meh")
    text = run_cli(*args, env=plugin_env)
    report = json.loads(run_cli(*args, "--format", "json", env=plugin_env).stdout)
    validate(report)
    sentence = text.stdout.splitlines()[-1]
    # This machine has no NVIDIA GPU: an otherwise passing setup says training would not be useful here.
    assert sentence.startswith("not ready: no NVIDIA GPU on this machine") and sentence.endswith("-> otdoctor gpu")
    assert text.returncode == 0 and "far too slowly to be useful" in sentence
    verdict = report["verdict"]
    assert verdict["ready"] is False and f"not ready: {verdict['reason']} -> {verdict['next']}" == sentence
    xml = JUnitXml.fromstring(run_cli(*args, "--format", "junit", env=plugin_env).stdout)
    (suite,) = list(xml)
    props = {p.name: p.value for p in suite.properties()}
    assert props == {"verdict.ready": "false", "verdict.reason": verdict["reason"], "verdict.next": "otdoctor gpu"}
    assert suite._elem.find("system-out").text.strip() == sentence
    github = run_cli(*args, "--format", "github", env=plugin_env).stdout.splitlines()
    assert github[-1] == f"otdoctor: {sentence}"
    assert f"::notice title=otdoctor verdict::{sentence}" in github
