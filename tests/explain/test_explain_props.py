"""Issue 12: `otdoctor explain` stays calm on any log text.

Generated logs (random text, mutations of the corpus in tests/data/explain, and repetitions of the
fragments the patterns look for) go through `explain_text`, `last_error_line` and both renderings;
a few dozen go end to end through `otdoctor explain` in-process. Every outcome is "matches" or "no
known problem" (or a one-line usage error for input that is not a log), never an internal error,
and in bounded time. The one-pass screening scan must agree with searching each problem on its own.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from otdoctor.explain.known_problems import explain_text, known_problems, last_error_line, log_bytes
from otdoctor.explain.matcher import brute_force_positions, first_positions
from otdoctor.render.explain_view import render_json, render_text
from tests.explain.corpus import HEALTHY_LOGS, PROBLEM_LOGS, read
from tests.support.calm import assert_calm, run_main

pytestmark = pytest.mark.property

CORPUS = [read(log) for log in PROBLEM_LOGS + HEALTHY_LOGS]
# What the patterns look for, so generated text gets close to (and into) their partial matches.
FRAGMENTS = [
    "No module named '",
    "torch",
    "'",
    "step: ",
    "|",
    " 9/72 [",
    "00:31<",
    "03:39, ",
    "205.79s/it",
    "\r",
    "\n",
    "Traceback (most recent call last):\n",
    "Error: ",
    "ERROR:",
    "CUDA out of memory",
    "loss=nan",
    "\x1b[31m",
    '"C:\\My Folder\\venv\\',
    'AutomagicSinkGD.py", line 1, in step\n',
    "ZeroDivisionError",
    "epoch: 0it [",
    "found version 12040)",
    "huggingface.co/",
    "/resolve/main/",
    "404 Client Error: Not Found for url: https://",
]
ROOT = Path(tempfile.mkdtemp(prefix="otdoctor-explain-props-"))


@st.composite
def mutated_corpus(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "repeat", "cr"]))
        if op == "insert":
            text = text[:at] + draw(st.text(max_size=40) | st.sampled_from(FRAGMENTS)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 200)) :]
        elif op == "repeat":
            text = text[:at] * draw(st.integers(1, 4)) + text[at:]
        else:
            text = text.replace("\n", "\r", draw(st.integers(1, 5)))
    return text


fragment_runs = st.builds(
    lambda parts, times: "".join(parts) * times,
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=12),
    st.integers(1, 3000),
)
logs = st.text(max_size=3000) | mutated_corpus() | fragment_runs


def check_matches(text: str) -> None:
    start = time.monotonic()
    matches = explain_text(text)
    lines = [m.line_no for m in matches]
    assert lines == sorted(lines) and all(n >= 1 for n in lines)
    assert len({m.problem.id for m in matches}) == len(matches)
    assert all(len(m.evidence) <= 300 for m in matches)
    data = log_bytes(text)
    assert sorted(first_positions(data)) == sorted(brute_force_positions(data))
    last = last_error_line(text)
    assert last is None or len(last) <= 300
    out = io.StringIO()
    render_text(matches, Console(file=out, width=120), last)
    assert json.loads(render_json(matches))["recognised"] is bool(matches)
    assert time.monotonic() - start < 5


@given(logs)
def test_any_log_text_is_matched_or_not_never_an_error(text):
    check_matches(text)


@settings(max_examples=40)
@given(logs, st.sampled_from(["text", "json"]))
def test_explain_command_stays_calm(text, fmt):
    log = ROOT / "ot.log"
    log.write_text(text, encoding="utf-8", errors="surrogatepass")
    run = run_main(["explain", str(log), "--format", fmt])
    assert_calm(run)
    if run.code == 2:  # only for what is not a log: empty, or binary
        assert run.err.startswith("otdoctor: error: ") and ("empty" in run.err or "binary" in run.err)
    elif fmt == "json":
        assert json.loads(run.out)["recognised"] is (run.code == 0)


@pytest.mark.parametrize("kind", ["folder", "fifo", "dev-zero", "dev-null"])
def test_an_input_that_is_not_a_regular_file_is_a_usage_error(kind):
    path = ROOT / f"not-a-log-{kind}"
    if not path.exists() and not path.is_symlink():
        {
            "folder": lambda: path.mkdir(),
            "fifo": lambda: __import__("os").mkfifo(path),
            "dev-zero": lambda: path.symlink_to("/dev/zero"),
            "dev-null": lambda: path.symlink_to("/dev/null"),
        }[kind]()
    run = run_main(["explain", str(path)])
    assert_calm(run)
    assert run.code == 2 and len(run.err.splitlines()) == 1 and run.out == ""


def test_the_corpus_patterns_compile_and_every_problem_is_searchable():
    """The sentinel of the screening scan is there: a clean scan reports it on any text."""
    data = log_bytes("nothing to see\n")
    assert first_positions(data) == brute_force_positions(data) == []
    assert len(known_problems()) >= 40
