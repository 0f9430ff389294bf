"""Third-party check plugins, built as real wheels and installed with `pip install --target`.

`otdoctor-demo-plugin` registers checks in every status through the `otdoctor.checks` entry-point
group; `otdoctor-broken-plugin` names a module that fails to import. Tests put the install folder
on PYTHONPATH of the real console script.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.factory import build_wheel

DEMO_CHECKS = '''\
from __future__ import annotations

import sys
import time

from otdoctor.engine import Check, CheckResult, Fix


class Fine(Check):
    id = "demo.fine"
    title = "Demo fine"
    area = "demo"

    def diagnose(self, ctx):
        return CheckResult.ok("all good")


class Meh(Check):
    id = "demo.meh"
    title = "Demo meh"
    area = "demo"

    def diagnose(self, ctx):
        return CheckResult.warn(
            "a little off", expected="exactly right", why="it drifts",
            fix=Fix("nudge it", ("demo nudge --gently",)),
        )


class Broken(Check):
    id = "demo.broken"
    title = "Demo broken"
    area = "demo"

    def diagnose(self, ctx):
        return CheckResult.fail(
            "it is broken", expected="it works", why="nothing runs without it",
            fix=Fix("repair it", ("demo repair --all",)), details=("part A missing",),
        )


class Child(Check):
    id = "demo.child"
    title = "Demo child"
    area = "demo"
    requires = ("demo.broken",)

    def diagnose(self, ctx):
        return CheckResult.ok("never runs")


class Crash(Check):
    id = "demo.crash"
    title = "Demo crash"
    area = "demo"

    def diagnose(self, ctx):
        raise RuntimeError("demo exploded")


class Slow(Check):
    """Waits while DEMO_SLOW is set, so a test can interrupt a running `otdoctor check`."""

    id = "demo.slow"
    title = "Demo slow"
    area = "demo"
    timeout_s = 120

    def diagnose(self, ctx):
        if ctx.probe.env.get("DEMO_SLOW"):
            sys.stderr.write("demo.slow started\\n")
            sys.stderr.flush()
            time.sleep(60)
        return CheckResult.ok("done waiting")


CHECKS = [Fine, Meh, Broken, Child, Crash, Slow]
'''

BROKEN_CHECKS = "import otdoctor_no_such_module_xyz  # the plugin's own dependency is missing\n"


def _install(tmp_root: Path, name: str, modules: dict[str, str], entry: dict[str, str]) -> Path:
    target = tmp_root / f"{name}-site"
    if (target / ".done").exists():
        return target
    wheel = build_wheel(tmp_root / "wheels", name, "1.0", modules=modules, entry_points={"otdoctor.checks": entry})
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-index",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    (target / ".done").write_text("")
    return target


@pytest.fixture(scope="session")
def demo_plugin(tmp_path_factory) -> Path:
    """A folder for PYTHONPATH holding the installed demo plugin distribution."""
    root = tmp_path_factory.getbasetemp() / "plugins"
    return _install(
        root,
        "otdoctor-demo-plugin",
        {"otdoctor_demo_plugin/__init__.py": "", "otdoctor_demo_plugin/checks.py": DEMO_CHECKS},
        {"demo": "otdoctor_demo_plugin.checks:CHECKS"},
    )


@pytest.fixture(scope="session")
def broken_plugin(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "plugins"
    return _install(
        root,
        "otdoctor-broken-plugin",
        {"otdoctor_broken_plugin/__init__.py": "", "otdoctor_broken_plugin/checks.py": BROKEN_CHECKS},
        {"broken": "otdoctor_broken_plugin.checks:CHECKS"},
    )
