"""Third-party check plugins: real wheels with an `otdoctor.checks` entry point, installed with
`pip install --target DIR` and loaded by the real console script with PYTHONPATH=DIR."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from tests.support.demo_plugin import broken_plugin, demo_plugin  # noqa: F401 - session fixtures
from tests.support.factory import make_onetrainer


@pytest.fixture
def ot(tmp_path: Path) -> Path:
    return make_onetrainer(tmp_path / "Projects" / "OneTrainer")


def test_plugin_wheel_declares_the_entry_point(demo_plugin):  # noqa: F811
    dist_info = next(demo_plugin.glob("otdoctor_demo_plugin-1.0.dist-info"))
    assert (
        (dist_info / "entry_points.txt")
        .read_text()
        .startswith("[otdoctor.checks]\ndemo = otdoctor_demo_plugin.checks:CHECKS\n")
    )
    wheel = next((demo_plugin.parent / "wheels").glob("otdoctor_demo_plugin-*.whl"))
    assert "otdoctor_demo_plugin-1.0.dist-info/entry_points.txt" in zipfile.ZipFile(wheel).namelist()


def test_installed_plugin_runs_beside_the_builtin_checks(run_cli, ot, demo_plugin):  # noqa: F811
    proc = run_cli("check", "--ot-dir", str(ot), env={"PYTHONPATH": str(demo_plugin)})
    lines = proc.stdout.splitlines()
    assert "system" in lines and "demo" in lines
    assert "  ✓ Demo fine (demo.fine): all good" in lines
    assert any(line.startswith("  ✓ git (system.git): git ") for line in lines)
    # Without the plugin on the path its checks are gone, and asking for them is a usage error.
    without = run_cli("check", "--ot-dir", str(ot), "--only", "demo")
    assert without.returncode == 2 and "no check matches 'demo'" in without.stderr


def test_plugin_that_fails_to_import_is_an_error_finding(run_cli, ot, broken_plugin):  # noqa: F811
    env = {"PYTHONPATH": str(broken_plugin)}
    proc = run_cli("check", "--ot-dir", str(ot), env=env)
    assert proc.returncode == 1
    source = "entry point broken = otdoctor_broken_plugin.checks:CHECKS"
    assert (
        f"‼ Load {source} (plugin.load-error-1): Check plugin {source} failed to load: "
        "ModuleNotFoundError: No module named 'otdoctor_no_such_module_xyz'"
    ) in proc.stdout
    assert "its checks did not run" in proc.stdout
    assert "✓ OneTrainer checkout (onetrainer.checkout)" in proc.stdout  # the rest still ran

    report = json.loads(run_cli("check", "--ot-dir", str(ot), "--format", "json", env=env).stdout)
    finding = next(c for c in report["checks"] if c["id"] == "plugin.load-error-1")
    assert finding["status"] == "error" and finding["area"] == "plugins"
    assert any("otdoctor_no_such_module_xyz" in d for d in finding["details"])


def test_list_shows_plugin_checks_and_the_broken_plugin(run_cli, demo_plugin, broken_plugin):  # noqa: F811
    env = {"PYTHONPATH": os.pathsep.join([str(demo_plugin), str(broken_plugin)])}
    proc = run_cli("check", "--list", env=env)
    assert proc.returncode == 0
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:] if line.strip()}
    for check_id in ("demo.fine", "demo.meh", "demo.broken", "demo.child", "demo.crash", "demo.slow"):
        assert rows[check_id][1] == "demo"
    assert rows["plugin.load-error-1"][1] == "plugins"
    assert "otdoctor_broken_plugin.checks:CHECKS" in proc.stdout


def test_both_plugins_together_each_counted(run_cli, ot, demo_plugin, broken_plugin):  # noqa: F811
    env = {"PYTHONPATH": os.pathsep.join([str(demo_plugin), str(broken_plugin)])}
    proc = run_cli("check", "--only", "demo.fine", "--only", "plugins", "--format", "json", env=env)
    report = json.loads(proc.stdout)
    assert [(c["id"], c["status"]) for c in report["checks"]] == [("demo.fine", "ok"), ("plugin.load-error-1", "error")]
    assert proc.returncode == 1
