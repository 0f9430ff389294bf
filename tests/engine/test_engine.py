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


def test_text_report_folds_dependency_skips_into_one_line_at_the_end():
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
    lines = text.splitlines()
    # The root cause keeps its own line in its area; the four checks behind it share one line.
    assert "  - cfg.file (cfg.file): no training config found" in lines
    assert lines[-4] == "- 4 checks skipped: 4 need cfg.file (--verbose lists them)"
    assert "cfg.rule" not in text
    buf = io.StringIO()
    render(report, console(file=buf, force_color=False), verbose=True)
    assert buf.getvalue().count("skipped because") == 4


# The verdict ---------------------------------------------------------------------------------------
def report_of(*checks):
    from otdoctor.engine.runner import build_report

    c = ctx()
    return build_report(run_checks(list(checks), c), c, time.perf_counter())


def healthy_core(**override):
    """The checks a verdict needs to say "ready", each OK unless overridden."""
    ids = ("system.git", "onetrainer.checkout", "venv.torch", "gpu.driver")
    return [make(i, override.get(i)) for i in ids]


def test_verdict_names_the_first_blocker_in_build_order_and_its_command():
    from otdoctor.engine.results import Fix

    config_fail = CheckResult.fail("config broken", fix=Fix("edit it", ("nano config.json",)))
    venv_fail = CheckResult.fail("venv broken", fix=Fix("rebuild it", ("rm -rf venv", "python -m venv venv")))
    checks = [make("config.file", config_fail), *healthy_core(**{"venv.torch": venv_fail})]
    verdict = report_of(*checks).verdict()
    # venv comes before config in the order a setup is built: fix the venv first.
    assert (verdict.ready, verdict.reason, verdict.next) == (False, "venv.torch: venv broken", "rm -rf venv")
    assert verdict.sentence() == "not ready: venv.torch: venv broken -> rm -rf venv"  # the title names it


def test_verdict_blocking_warning_is_not_ready_though_the_exit_code_is_0():
    from otdoctor.engine.results import Fix

    missing = CheckResult.warn(
        "OneTrainer is not installed (no checkout found)",
        blocks_dependents=True,
        fix=Fix("install it", ("otdoctor install",)),
    )
    report = report_of(*healthy_core(**{"onetrainer.checkout": missing}))
    assert report.exit_code() == 0  # CI meaning unchanged: no required check failed
    assert (
        report.verdict().sentence() == "not ready: OneTrainer is not installed (no checkout found) -> otdoctor install"
    )


def test_verdict_no_gpu_on_an_otherwise_ready_machine_says_training_will_not_be_useful():
    no_gpu = CheckResult.skip("no NVIDIA GPU: no NVIDIA device on the PCI bus", data={"nvidia_gpu": False})
    report = report_of(*healthy_core(**{"gpu.driver": no_gpu}))
    verdict = report.verdict()
    assert report.exit_code() == 0 and not verdict.ready
    assert "no NVIDIA GPU" in verdict.reason and "far too slowly to be useful" in verdict.reason
    assert verdict.next == "otdoctor gpu"


def test_verdict_ready_names_the_first_warning_and_a_partial_run_claims_nothing():
    ready = report_of(*healthy_core(), make("models.checkpoints", CheckResult.warn("base model not found")))
    verdict = ready.verdict()
    assert verdict.ready and "base model not found" in verdict.reason and verdict.next == "otdoctor smoke"
    assert report_of(*healthy_core()).verdict().sentence() == "ready to train: every check passed -> otdoctor smoke"
    partial = report_of(make("system.git")).verdict()
    assert not partial.ready and partial.reason.startswith(
        "cannot tell: onetrainer.checkout, venv.torch, gpu.driver did not run"
    )
    # --strict turns the warning into the blocker.
    assert ready.verdict(strict=True).sentence().startswith("not ready: models.checkpoints: base model not found")


def test_verdict_names_a_failed_optional_check_instead_of_calling_the_run_clean():
    from otdoctor.engine.results import Fix

    vram = make("gpu.vram", CheckResult.fail("4.0 GiB free, needs 12.0 GiB", fix=Fix("free it", ("kill 42",))))
    type(vram).required = False
    # VRAM another program holds does not fail the run (exit 0), but training meets it.
    busy = report_of(*healthy_core(), vram)
    assert busy.exit_code() == 0
    assert busy.verdict().sentence() == (
        "ready to train: every required check passed, but 1 problem will bite training: "
        "gpu.vram: 4.0 GiB free, needs 12.0 GiB -> kill 42"
    )
    # `check --only gpu`: the core checks that did not run are named, and so is the failure that did.
    partial = report_of(make("gpu.driver"), vram)
    assert partial.exit_code() == 0
    assert partial.verdict().sentence() == (
        "not ready: cannot tell: onetrainer.checkout, venv.torch did not run; of the 2 that did, "
        "1 problem will bite training: gpu.vram: 4.0 GiB free, needs 12.0 GiB -> kill 42"
    )


def test_verdict_next_command_is_a_whole_command_when_the_fix_starts_with_cd():
    from otdoctor.engine.results import Fix

    no_venv = CheckResult.fail(
        "no venv at /x/venv", fix=Fix("create it", ("cd /x", "# the launcher makes the venv", "./install.sh"))
    )
    verdict = report_of(*healthy_core(**{"venv.torch": no_venv})).verdict()
    assert verdict.next == "cd /x && ./install.sh"
    # A fix line that already is whole stands alone; the rest of the fix stays in the report.
    whole = CheckResult.fail("torch missing", fix=Fix("install", ("cd /x && pip install torch", "pip check")))
    assert report_of(*healthy_core(**{"venv.torch": whole})).verdict().next == "cd /x && pip install torch"


def test_crash_is_not_ready_and_points_at_verbose():
    report = report_of(*healthy_core(), make("dataset.scan", raises=RuntimeError("boom")))
    assert report.verdict().sentence() == (
        "not ready: dataset.scan: the check crashed: RuntimeError: boom -> otdoctor check --only dataset.scan --verbose"
    )


def test_build_order_puts_areas_in_setup_order_and_problems_first():
    checks = [
        make("dataset.a"),
        make("config.a"),
        make("zplugin.a"),
        make("gpu.a"),
        make("venv.ok"),
        make("venv.bad", CheckResult.fail("bad")),
        make("venv.meh", CheckResult.warn("meh")),
        make("system.a"),
    ]
    order = [o.check_id for o in report_of(*checks).in_build_order()]
    assert order == ["system.a", "venv.bad", "venv.meh", "venv.ok", "gpu.a", "config.a", "dataset.a", "zplugin.a"]


# Ctrl-C while checks run -----------------------------------------------------------------------------
def test_ctrl_c_taken_by_a_check_thread_still_stops_the_run_at_once():
    """The kernel may hand Ctrl-C to any thread; Python runs the handler in the main thread only when
    its wait returns. A check that still has a minute to go must not hold the interrupt that long."""
    import signal

    release = threading.Event()

    class TakesTheSignal(Check):
        id = "demo.slow"
        title = "slow"
        area = "demo"
        timeout_s = 120.0

        def diagnose(self, ctx: Context) -> CheckResult:
            time.sleep(0.3)  # the main thread is waiting for this check by now
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # delivered to this thread
            release.wait(60)
            return CheckResult.ok("done")

    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_checks([TakesTheSignal()], ctx())
    finally:
        release.set()
    assert time.monotonic() - started < 10  # not when the check ends (60 s) or times out (120 s)
