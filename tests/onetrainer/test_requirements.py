"""Requirements files as pip reads them: any text is parsed or becomes a finding, in linear time."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otdoctor.onetrainer.requirements import installed_from, judge, read

FRAGMENTS = (
    "torch==2.7.1",
    "alpha>=1.0",
    "-r ",
    "-r other.txt",
    "-c constraints.txt",
    "-e ",
    "-e git+https://github.com/Nerogar/mgds.git@85bf187#egg=mgds",
    "git+https://[bad",
    "name @ file:///x",
    "; python_version < '3.11'",
    "; sys_platform == 'win32'",
    "; nonsense ==",
    " --hash=sha256:ab",
    "--extra-index-url https://download.pytorch.org/whl/cu128",
    "--index-url=",
    "\\",
    " # comment",
    "#",
    " ",
    "\t",
    "\n",
    "[",
    "]",
    "@",
    '"',
    "'",
    "\x00",
    "é",
    "\ud800",
)
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=30).map("".join) | st.text()
MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "os_name": "posix"}
INSTALLED = installed_from([{"name": "torch", "version": "2.7.1+cu128"}, {"name": "alpha", "version": "not-a-version"}])


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


@pytest.mark.property
@given(main=texts, other=texts)
def test_any_text_is_parsed_or_a_finding(main: str, other: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write(folder, "other.txt", other)
        started = time.monotonic()
        req_set = read([_write(folder, "requirements-global.txt", main)])
        mismatches, checked, not_here = judge(req_set, INSTALLED, MARKERS)
        assert time.monotonic() - started < 1.0
    assert checked + not_here == len(req_set.lines)
    assert all(m.message for m in mismatches)
    assert all(isinstance(p, str) and p for p in req_set.problems)


def test_a_long_line_is_linear() -> None:
    """`\\s+#` and `\\s+--opt` once took seconds on a long run of spaces (quadratic backtracking)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "requirements.txt", " " * 1_000_000 + "x\n" + "a" + " " * 1_000_000 + "-\n")
        started = time.monotonic()
        req_set = read([path])
        assert time.monotonic() - started < 1.0
    assert [line.name for line in req_set.lines] == ["x"]
    assert len(req_set.problems) == 1 and "pip cannot read" in req_set.problems[0]


def test_included_pipe_and_missing_file_are_findings(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    _write(tmp_path, "requirements.txt", "-r pipe.txt\n-r missing.txt\n-r bad\x00name\nalpha==1.0\n")
    found: dict[str, object] = {}
    worker = threading.Thread(target=lambda: found.update(rs=read([tmp_path / "requirements.txt"])), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "reading a named pipe blocked"
    req_set = found["rs"]
    problems = "\n".join(req_set.problems)  # type: ignore[attr-defined]
    assert "pipe.txt: not a regular file (a named pipe)" in problems
    assert "missing.txt: No such file or directory" in problems
    assert "embedded null byte" in problems
    assert [line.name for line in req_set.lines] == ["alpha"]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def checkout_with_venv(tmp_path_factory) -> Path:
    """A OneTrainer-shaped checkout with a real (pip-less) venv, so venv.requirements runs for real."""
    from tests.support.factory import make_onetrainer, make_venv, pyenv_python

    ot = make_onetrainer(tmp_path_factory.mktemp("reqs") / "OneTrainer", git_init=False)
    make_venv(ot / "venv", pyenv_python("3.11"), with_pip=False)
    return ot


@pytest.mark.property
@settings(max_examples=30)
@given(main=texts, platform=texts)
def test_any_requirements_text_keeps_check_calm(checkout_with_venv: Path, main: str, platform: str) -> None:
    from tests.support.calm import assert_calm, run_main

    _write(checkout_with_venv, "requirements-global.txt", main)
    _write(checkout_with_venv, "requirements-default.txt", platform)
    with tempfile.TemporaryDirectory() as cache:
        env = {"OTDOCTOR_CACHE_DIR": cache, "NO_COLOR": "1", "OT_PLATFORM_REQUIREMENTS": "requirements-default.txt"}
        run = run_main(["check", "--ot-dir", str(checkout_with_venv), "--only", "venv.requirements", "-f", "json"], env)
    assert_calm(run)
    assert '"id": "venv.requirements"' in run.out
