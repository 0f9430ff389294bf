"""What the last line of `otdoctor check` says in the cases a new user met (issue 13, QA round 2),
and what a stopped command says about resuming.

Each test runs the real console script (or, for an unreadable checkout, the same as the
unprivileged user `nobody`) and asserts the line the user reads.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.factory import make_onetrainer, otdoctor_exe
from tests.support.nobody import folder, nobody_home, run_as_nobody, scratch_world, why_not

NVML = Path(__file__).parents[1] / "data" / "nvml"


def test_the_next_command_of_a_two_line_fix_is_whole(run_cli, tmp_path: Path) -> None:
    # A checkout with no venv yet: the fix is `cd CHECKOUT` then `./install.sh`; a bare `cd` does nothing.
    ot = make_onetrainer(tmp_path / "OneTrainer")
    proc = run_cli("check", "--ot-dir", str(ot), "--offline")
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("not ready: OneTrainer venv: no venv at "), proc.stdout
    assert last.endswith(f"-> cd {ot} && ./install.sh"), last


def test_a_failed_optional_check_is_named_by_the_verdict_not_contradicted(run_cli) -> None:
    # Another program holds 16 GiB of the RTX 4090: gpu.vram fails but is not required (exit 0).
    proc = run_cli("check", "--only", "gpu", env={"OTDOCTOR_NVML_SNAPSHOT": str(NVML / "rtx4090-desktop.json")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✗ Free VRAM (gpu.vram): 7.6 GiB free" in proc.stdout
    last = proc.stdout.splitlines()[-1]
    assert "no blocking problem" not in last
    assert last.startswith("not ready: cannot tell: onetrainer.checkout, venv.torch did not run; of the 4 that did, ")
    assert "1 problem will bite training: Free VRAM: 7.6 GiB free of 24.0 GiB" in last


def _stopped_by_sigterm(argv: list[str], base_env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Start otdoctor reading a log from stdin, wait until it is reading, SIGTERM it."""
    proc = subprocess.Popen(
        [otdoctor_exe(), *argv], env=base_env, cwd=cwd, stdin=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None
    # More than a pipe holds: once this write returns, otdoctor has been reading (its handlers are set).
    fed = threading.Thread(target=proc.stdin.write, args=(b"epoch:  10%|#         | 1/10 [00:01<00:09]\n" * 20_000,))
    fed.start()
    fed.join(timeout=60)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err.decode()


def test_a_command_with_nothing_to_resume_just_says_stopped(base_env, tmp_path: Path) -> None:
    rc, err = _stopped_by_sigterm(["estimate", "--from-log", "-"], base_env, tmp_path)
    assert rc == 143 and err == "otdoctor: stopped by SIGTERM\n", err


@pytest.mark.parametrize(
    ("argv", "resumable"),
    [
        (["install", "--dir", "x"], True),
        (["fix", "venv", "--yes"], True),
        (["smoke", "--tiny"], True),
        (["models", "download", "sdxl"], True),
        (["--no-color", "models", "download"], True),
        (["models", "verify", "x"], False),
        (["check"], False),
        (["estimate", "--from-log", "-"], False),
        (["gpu"], False),
        (["merge", "a.json"], False),
    ],
)
def test_only_install_fix_smoke_and_download_offer_to_resume(argv: list[str], resumable: bool) -> None:
    from otdoctor.cli import _resumable

    assert _resumable(argv) is resumable


# An unreadable checkout: made by root with mode 700, otdoctor run as nobody --------------------------
@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    if why_not() is not None:
        pytest.skip(why_not() or "")
    with scratch_world("otdoctor-closed-ot-") as top:
        yield top


def _closed_checkout(path: Path) -> Path:
    folder(path / "scripts")
    (path / "scripts" / "train.py").write_text("")
    (path / "install.sh").write_text("")
    path.chmod(0o700)
    return path


def test_a_checkout_made_with_sudo_is_unreadable_not_missing(world: Path) -> None:
    home = nobody_home(world, "home-sudo-ot")
    ot = _closed_checkout(home / "OneTrainer")
    # --only onetrainer: the Python copy nobody runs here lacks _ssl, a python-area finding that comes first.
    res = run_as_nobody(world, home, ["check", "--only", "onetrainer", "--format", "json"], {})
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads(res.stdout)
    found = {c["id"]: c for c in report["checks"]}["onetrainer.checkout"]
    assert found["summary"] == f"cannot read {ot} (permission denied), on the way to the checkout at ~/OneTrainer"
    assert report["verdict"]["reason"].startswith(f"OneTrainer checkout: cannot read {ot} (permission denied)")
    assert "not installed" not in json.dumps(report["verdict"])
    # A closed folder above the usual places says nothing about a checkout inside: still "not installed".
    other = nobody_home(world, "home-closed-projects")
    folder(other / "Projects", 0o700)
    res = run_as_nobody(world, other, ["check", "--only", "onetrainer", "--format", "json"], {})
    assert "not installed" in json.loads(res.stdout)["verdict"]["reason"]


def test_report_on_an_unreadable_ot_dir_writes_its_bundle(world: Path) -> None:
    home = nobody_home(world, "home-report-ot")
    ot = _closed_checkout(world / "root-OneTrainer")
    out = home / "bundle.zip"
    res = run_as_nobody(world, home, ["report", "--offline", "--ot-dir", str(ot), "--output", str(out)], {})
    text = res.stdout + res.stderr
    assert res.returncode in (0, 1), text[-3000:]
    assert "Invalid value" not in text and "Traceback" not in text and "internal error" not in text
    with zipfile.ZipFile(out) as bundle:
        files = {name.split("/", 1)[1]: bundle.read(name).decode() for name in bundle.namelist()}
    found = {c["id"]: c for c in json.loads(files["checks.json"])["checks"]}["onetrainer.checkout"]
    assert found["summary"].startswith(f"cannot read {ot} (permission denied)")
