"""Bad NVML snapshots ($OTDOCTOR_NVML_SNAPSHOT): one finding about that file, never a crashed check.

Generated files are arbitrary JSON and the recorded machines of tests/data/nvml with one value
swapped for arbitrary JSON; pipes, devices and folders given as the snapshot are refused at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otdoctor.engine.check import Context, Options
from otdoctor.engine.registry import load_checks, select
from otdoctor.engine.results import Status
from otdoctor.engine.runner import run_checks
from otdoctor.probe import Probe
from tests.support import NVML_DATA
from tests.support.calm import assert_calm, run_main

RECORDED = {p.stem: json.loads(p.read_text()) for p in sorted(NVML_DATA.glob("*.json"))}
GPU_CHECKS = select(load_checks(include_plugins=False)[0], only=("gpu",))
KEYS = ("format", "host", "system", "devices", "value", "error", "__struct__", "fields", "__object__", "pid")

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value could be swapped in."""
    found = [prefix]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found += _paths(child, (*prefix, key))
    return found


@st.composite
def snapshots(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(json_values)
    doc = json.loads(json.dumps(RECORDED[draw(st.sampled_from(sorted(RECORDED)))]))
    path = draw(st.sampled_from(_paths(doc)))
    if not path:
        return draw(json_values)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = draw(json_values)
    return doc


def _env(snapshot: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_", "CUDA_"))}
    return {**env, "OTDOCTOR_NVML_SNAPSHOT": str(snapshot)}


def gpu_outcomes(snapshot: Path) -> dict[str, Any]:
    ctx = Context(Probe(env=_env(snapshot)), Options())
    return {o.check_id: o.result for o in run_checks(GPU_CHECKS, ctx)}


def _assert_one_finding(results: dict[str, Any]) -> None:
    assert not [cid for cid, r in results.items() if r.status is Status.ERROR], results
    driver = results["gpu.driver"]
    if driver.status is Status.FAIL and driver.summary.startswith("NVML snapshot"):
        assert "is not valid" in driver.summary or "cannot be read" in driver.summary
        assert all(r.status is Status.SKIP for cid, r in results.items() if cid != "gpu.driver")


@pytest.mark.property
@given(snapshots())
def test_any_json_snapshot_is_a_finding_about_that_file(doc: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "snap.json")
        path.write_text(json.dumps(doc))
        _assert_one_finding(gpu_outcomes(path))


@pytest.mark.property
@settings(max_examples=30)
@given(snapshots())
def test_any_json_snapshot_keeps_check_and_gpu_calm(doc: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "snap.json")
        path.write_text(json.dumps(doc))
        for argv in (["check", "--only", "gpu", "--format", "json"], ["gpu"]):
            assert_calm(run_main(argv, {"OTDOCTOR_NVML_SNAPSHOT": str(path), "NO_COLOR": "1"}))


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('{"format": "otdoctor-nvml-snapshot/1", "host": [1]}', "host is a JSON array"),
        ('{"format": "otdoctor-nvml-snapshot/1", "devices": 5}', "devices is a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),
        ('{"format": "otdoctor-nvml-snapshot/1", "system": {"nvmlDeviceGetCount": {"value": 1000000000}}}', "Count"),
        ('{"format": "otdoctor-nvml-snapshot/1", "system": {"x": {"value": {"__struct__": "nvmlInit"}}}}', "unknown"),
        ("\xff not json", "not JSON"),
    ],
)
def test_issue_12_snapshots_fail_gpu_driver_only(tmp_path: Path, text: str, expect: str) -> None:
    path = tmp_path / "snap.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if text[0] != "\xff" else b"\xff not json")
    results = gpu_outcomes(path)
    _assert_one_finding(results)
    driver = results["gpu.driver"]
    assert driver.status is Status.FAIL and expect in driver.summary, driver.summary
    assert driver.summary.startswith(f"NVML snapshot {path} (OTDOCTOR_NVML_SNAPSHOT) is not valid")
    assert driver.fix is not None and driver.fix.commands == ("unset OTDOCTOR_NVML_SNAPSHOT",)
    pasted = subprocess.run(
        ["bash", "-c", f"{driver.fix.commands[0]}; echo ${{OTDOCTOR_NVML_SNAPSHOT-unset}}"],
        env={**os.environ, "OTDOCTOR_NVML_SNAPSHOT": str(path)},
        capture_output=True,
        text=True,
    )
    assert pasted.stdout.strip() == "unset"


def _refused_quickly(path: Path, expect: str) -> None:
    """`check` and `gpu` finish (no read of a pipe that never ends) and name what the path is."""
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(gpu_outcomes(path)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"reading {path} blocked"
    driver = outcome["gpu.driver"]
    assert driver.status is Status.FAIL and "cannot be read" in driver.summary and expect in driver.summary
    run = run_main(["gpu"], {"OTDOCTOR_NVML_SNAPSHOT": str(path)})
    assert_calm(run)
    assert run.code == 2 and expect in run.err and len(run.err.strip().splitlines()) == 1


def test_a_fifo_as_the_snapshot_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "snap.json"
    os.mkfifo(fifo)
    _refused_quickly(fifo, "not a regular file (a named pipe)")


def test_a_device_or_a_folder_as_the_snapshot_is_refused(tmp_path: Path) -> None:
    _refused_quickly(Path("/dev/zero"), "not a regular file (a character device)")
    _refused_quickly(tmp_path, "Is a directory")


def test_recorded_machines_still_replay() -> None:
    for name in RECORDED:
        results = gpu_outcomes(NVML_DATA / f"{name}.json")
        assert not results["gpu.driver"].summary.startswith("NVML snapshot"), name
        assert all(r.status is not Status.ERROR for r in results.values()), name


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        ({"total": -1, "free": 10**30}, "'total' -1 does not fit"),
        ({"free": 10**30}, "does not fit"),
        ({"free": 25757220864 + 1}, "is not what NVML answers"),  # more free than the GPU has
        ({"used": 25757220864 * 2}, "is not what NVML answers"),
        ({"total": 17 << 40, "free": 1 << 30}, "is not what NVML answers"),  # 17 TiB: no GPU has that
        ({"total": 0, "free": 0, "used": 0, "reserved": 0}, "is not what NVML answers"),
    ],
)
def test_impossible_memory_figures_are_an_invalid_snapshot(tmp_path: Path, fields: dict[str, int], expect: str) -> None:
    doc = json.loads(json.dumps(RECORDED["rtx4090-desktop"]))
    doc["devices"][0]["nvmlDeviceGetMemoryInfo(version=33554472)"]["value"]["fields"].update(fields)
    path = tmp_path / "memneg.json"
    path.write_text(json.dumps(doc))
    results = gpu_outcomes(path)
    _assert_one_finding(results)
    driver = results["gpu.driver"]
    assert driver.status is Status.FAIL and "is not valid" in driver.summary and expect in driver.summary
    run = run_main(["check", "--only", "gpu"], {"OTDOCTOR_NVML_SNAPSHOT": str(path), "NO_COLOR": "1"})
    assert_calm(run)
    assert run.code == 1 and "TiB" not in run.out and "is not valid" in run.out
    gpu = run_main(["gpu"], {"OTDOCTOR_NVML_SNAPSHOT": str(path), "NO_COLOR": "1"})
    assert gpu.code != 0 and "TiB" not in gpu.out + gpu.err
