"""The runner and registry: order, concurrency, crashes, timeouts, skips, selection."""

from __future__ import annotations

import threading
import time

import pytest

from otdoctor.engine.check import Check, Context
from otdoctor.engine.registry import load_checks, select
from otdoctor.engine.results import CheckResult, Status
from otdoctor.engine.runner import run_checks
from otdoctor.probe import Probe


def make(check_id, result=None, requires=(), delay=0.0, raises=None, timeout_s=30.0, log=None):
    class C(Check):
        id = check_id
        title = check_id
        area = check_id.split(".")[0]

        def diagnose(self, ctx: Context) -> CheckResult:
            if log is not None:
                log.append(("start", check_id, time.monotonic()))
            time.sleep(delay)
            if raises:
                raise raises
            if log is not None:
                log.append(("end", check_id, time.monotonic()))
            return result or CheckResult.ok(f"{check_id} fine")

    C.requires = tuple(requires)
    C.timeout_s = timeout_s
    return C()


def ctx():
    return Context(Probe())


def by_id(outcomes):
    return {o.check_id: o for o in outcomes}


def test_dependencies_run_first_and_failed_prerequisite_skips_with_reason():
    log = []
    checks = [
        make("b.child", requires=["a.parent"], log=log),
        make("a.parent", CheckResult.fail("parent broken"), log=log),
        make("c.other", log=log),
    ]
    out = by_id(run_checks(checks, ctx()))
    assert out["a.parent"].status is Status.FAIL
    assert out["b.child"].status is Status.SKIP
    assert "a.parent" in out["b.child"].result.summary and "parent broken" in out["b.child"].result.summary
    assert out["c.other"].status is Status.OK
    assert ("start", "b.child") not in [(e, i) for e, i, _ in log]


def test_child_runs_after_passing_parent_and_sees_its_result():
    seen = {}

    class Child(Check):
        id, title, area, requires = "x.child", "child", "x", ("x.parent",)

        def diagnose(self, c):
            seen["parent"] = c.result("x.parent")
            return CheckResult.ok("done")

    out = by_id(run_checks([Child(), make("x.parent", CheckResult.warn("meh", data={"v": 3}))], ctx()))
    assert out["x.child"].status is Status.OK
    assert seen["parent"].data == {"v": 3}


def test_crash_becomes_error_with_traceback_and_run_goes_on():
    checks = [make("a.boom", raises=RuntimeError("kaput")), make("b.fine")]
    out = by_id(run_checks(checks, ctx()))
    assert out["a.boom"].status is Status.ERROR
    assert "RuntimeError: kaput" in out["a.boom"].result.summary
    assert "Traceback" in out["a.boom"].traceback and "kaput" in out["a.boom"].traceback
    assert out["b.fine"].status is Status.OK


def test_timeout_becomes_error_without_waiting_for_the_check():
    start = time.monotonic()
    out = by_id(run_checks([make("a.slow", delay=5, timeout_s=0.3), make("b.fast")], ctx()))
    assert time.monotonic() - start < 3
    assert out["a.slow"].status is Status.ERROR
    assert "0.3 s" in out["a.slow"].result.summary
    assert out["b.fast"].status is Status.OK


def test_independent_checks_run_concurrently():
    checks = [make(f"a.c{i}", delay=0.5) for i in range(4)]
    start = time.monotonic()
    run_checks(checks, ctx())
    assert time.monotonic() - start < 1.5  # four half-second checks, not two seconds


def test_blocking_warning_skips_dependents():
    parent = make("a.parent", CheckResult.warn("nothing installed", blocks_dependents=True))
    out = by_id(run_checks([parent, make("b.child", requires=["a.parent"])], ctx()))
    assert out["b.child"].status is Status.SKIP
    assert "nothing installed" in out["b.child"].result.summary


def test_memo_computes_shared_fact_once_across_threads():
    c = ctx()
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.2)
        return 42

    threads = [threading.Thread(target=lambda: c.memo("k", compute)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert c.memo("k", compute) == 42


def test_strict_and_required_decide_failure():
    out = run_checks([make("a.w", CheckResult.warn("w")), make("b.f", CheckResult.fail("f"))], ctx())
    warn, fail = out
    assert not warn.is_failure() and warn.is_failure(strict=True)
    assert fail.is_failure()


def test_builtin_checks_load_with_unique_ids():
    checks, errors = load_checks()
    assert not errors, errors
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    assert "onetrainer.checkout" in ids


def test_select_by_area_id_and_prefix_and_unknown():
    checks = [make("venv.pip"), make("venv.torch"), make("gpu.driver")]
    assert [c.id for c in select(checks, only=["venv"])] == ["venv.pip", "venv.torch"]
    assert [c.id for c in select(checks, skip=["venv.pip"])] == ["venv.torch", "gpu.driver"]
    assert [c.id for c in select(checks, only=["venv.*"], skip=["venv.torch"])] == ["venv.pip"]
    with pytest.raises(ValueError, match="no check matches 'nope'"):
        select(checks, only=["nope"])


def test_text_report_collapses_skips_that_share_one_reason():
    import io

    from otdoctor.engine.runner import build_report
    from otdoctor.render.text import console, render

    checks = [make("cfg.file", CheckResult.skip("no training config found"))]
    checks += [make(f"cfg.rule{i}", requires=["cfg.file"]) for i in range(4)]
    c = ctx()
    report = build_report(run_checks(checks, c), c, time.perf_counter())
    buf = io.StringIO()
    render(report, console(file=buf, force_color=False))
    text = buf.getvalue()
    assert "4 cfg checks skipped because cfg.file: no training config found" in text
    assert "cfg.rule0, cfg.rule1, cfg.rule2, cfg.rule3" in text
    assert text.count("skipped because") == 1
    buf = io.StringIO()
    render(report, console(file=buf, force_color=False), verbose=True)
    assert buf.getvalue().count("skipped because") == 4
