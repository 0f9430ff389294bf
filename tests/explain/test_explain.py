"""`otdoctor explain`: the corpus of real-shaped OneTrainer logs, the table, and the command."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from otdoctor.explain.known_problems import explain_text, known_problems, last_error_line, read_input
from otdoctor.explain.table import TRACKER_SOURCE_PREFIXES, UPSTREAM_SOURCE_PREFIX
from tests.explain.corpus import HEALTHY_LOGS, PROBLEM_LOGS, problem_id, read

UNKNOWN = """\
Traceback (most recent call last):
  File "/home/ana/Projects/OneTrainer/scripts/train.py", line 44, in <module>
    main()
  File "/home/ana/Projects/OneTrainer/modules/util/args/TrainArgs.py", line 88, in parse
    raise ValueError("frobnicator must be positive")
ValueError: frobnicator must be positive
"""
SOURCE = re.compile(r"^(?:Nerogar/OneTrainer#\d+|lshqqytiger/OneTrainer#\d+ \(AMD fork of OneTrainer\)|guide)$")


def test_corpus_covers_every_known_problem():
    assert len(PROBLEM_LOGS) >= 40 and len(HEALTHY_LOGS) >= 20
    assert {problem_id(log) for log in PROBLEM_LOGS} == {p.id for p in known_problems()}


def test_the_table_is_grounded_in_onetrainers_tracker():
    problems = known_problems()
    assert len(problems) >= 40
    assert sum(1 for p in problems if p.tracker_sources()) >= 40
    for p in problems:
        assert p.sources and all(SOURCE.match(s) for s in p.sources), (p.id, p.sources)
        assert p.diagnosis and p.fix and p.otdoctor.startswith("otdoctor "), p.id
        assert all(s.startswith(TRACKER_SOURCE_PREFIXES) or s == "guide" for s in p.sources)
    ids = {p.id: p for p in problems}
    assert ids["torch-missing"].tracker_sources() and ids["no-nvidia-driver"].tracker_sources()


def test_at_least_40_problems_cite_an_issue_on_onetrainers_own_tracker(run_cli):
    """A fork's issue or the setup guide does not count, and `--list` says the same number."""
    problems = known_problems()
    upstream = [p for p in problems if p.upstream_sources()]
    assert len(upstream) >= 40, sorted(p.id for p in problems if p not in upstream)
    assert all(s.startswith(UPSTREAM_SOURCE_PREFIX) for p in upstream for s in p.upstream_sources())
    res = run_cli("explain", "--list")
    assert res.stdout.startswith(f"{len(problems)} known problems ({len(upstream)} reported on OneTrainer's issue")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "commands" / "explain.md").read_text(encoding="utf-8")
    assert f"{len(problems)} problems, {len(upstream)} of them" in doc


def test_a_pip_remote_not_found_log_is_explained_with_its_issue(run_cli):
    """Nerogar/OneTrainer#1019: pip stops on an editable diffusers checkout in venv/src with no remote."""
    log = next(p for p in PROBLEM_LOGS if p.name == "broken-editable.remote-not-found.log")
    res = run_cli("explain", str(log))
    assert res.returncode == 0, res.stderr
    assert "pip failed on a broken editable checkout in venv/src" in res.stdout
    assert "rm -rf venv/src/diffusers" in res.stdout
    assert "reported in: Nerogar/OneTrainer#1019" in res.stdout


@pytest.mark.parametrize("log", PROBLEM_LOGS, ids=lambda p: p.name)
def test_each_problem_log_is_recognised(log):
    matches = explain_text(read(log))
    ids = [m.problem.id for m in matches]
    assert problem_id(log) in ids, ids
    # Specific, not a net: at most one other problem shows up in a log of this one.
    assert len([i for i in ids if i != problem_id(log)]) <= 1, ids
    first = next(m for m in matches if m.problem.id == problem_id(log))
    assert first.evidence and first.evidence in read(log).replace("\r", "\n")


@pytest.mark.parametrize("log", HEALTHY_LOGS, ids=lambda p: p.name)
def test_healthy_logs_match_nothing(log):
    assert explain_text(read(log)) == []


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("ModuleNotFoundError: No module named 'torch'\n", {"torch-missing"}),
        ("ModuleNotFoundError: No module named 'torchvision'\n", set()),  # another package: not this
        ("ModuleNotFoundError: No module named 'torch._C'\n", set()),
        (
            "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU",
            {"no-nvidia-driver"},
        ),
        ("epoch:  50%|█████     | 1/2 [03:09<03:09, 189.50s/it]\n", set()),  # slow epochs are normal
        ("pip._internal.vcs.versioncontrol.RemoteNotFoundError\n", {"broken-editable"}),  # the last line only
    ],
)
def test_lookalikes(text, wanted):
    assert {m.problem.id for m in explain_text(text)} == wanted


def test_a_one_megabyte_line_is_searched_to_its_end():
    """A log that is one long line (a progress bar without newlines): the problem at its very end is
    found, shown around the match, and the last error line is that line's start, cut short."""
    line = (
        "ERROR: "
        + "loss=0.1 step 9/72 [00:31<03:39, 3.49s/it] " * 24_000
        + "torch.OutOfMemoryError: CUDA out of memory"
    )
    assert len(line) > 1_000_000
    [match] = explain_text(line)
    assert match.problem.id == "cuda-oom" and match.line_no == 1
    assert match.evidence.endswith("CUDA out of memory") and len(match.evidence) <= 300
    assert last_error_line(line + "\n").startswith("ERROR: loss=0.1")


def test_unknown_error_is_said_honestly(run_cli, tmp_path):
    assert explain_text(UNKNOWN) == []
    log = tmp_path / "train.log"
    log.write_text(UNKNOWN)
    res = run_cli("explain", str(log))
    assert res.returncode == 1
    assert "No known problem recognised" in res.stdout
    assert "ValueError: frobnicator must be positive" in res.stdout
    assert f"otdoctor knows {len(known_problems())} problems" in res.stdout
    assert "otdoctor report" in res.stdout


def test_cli_reads_a_file_and_stdin(run_cli, tmp_path):
    oom, nan = (read(next(p for p in PROBLEM_LOGS if p.name == f"{i}.log")) for i in ("cuda-oom", "loss-nan"))
    log = tmp_path / "install.log"
    # A whole failed session: tqdm redraws with \r and colour codes, as a terminal log has them.
    log.write_text("\x1b[32mstarting\x1b[0m\r\n" + oom.replace("\n", "\r\n") + nan)
    res = run_cli("explain", str(log))
    assert res.returncode == 0, res.stderr
    assert res.stdout.index("CUDA out of memory") < res.stdout.index("Training loss became NaN")
    # The otdoctor command is printed as a command, once, with the other commands of the fix.
    assert res.stdout.count("otdoctor fix gpu.vram") == 1
    assert "\n      otdoctor fix gpu.vram\n" in res.stdout and "otdoctor: otdoctor" not in res.stdout
    assert "reported in: Nerogar/OneTrainer#28, Nerogar/OneTrainer#232" in res.stdout

    res = run_cli("explain", "-", "--format", "json", input=read(PROBLEM_LOGS[0]))
    doc = json.loads(res.stdout)
    assert doc["recognised"] is True
    assert doc["problems"][0]["id"] == problem_id(PROBLEM_LOGS[0])
    assert doc["problems"][0]["sources"]


def test_list_shows_every_problem_with_its_sources(run_cli):
    res = run_cli("explain", "--list")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{len(known_problems())} known problems (")
    for p in known_problems():
        assert f"{p.id}  {p.title}" in res.stdout
    assert "reported in: Nerogar/OneTrainer#720, Nerogar/OneTrainer#458" in res.stdout

    doc = json.loads(run_cli("explain", "--list", "--format", "json").stdout)
    assert doc["count"] == len(doc["problems"]) == len(known_problems())
    torch = next(p for p in doc["problems"] if p["id"] == "torch-missing")
    assert torch["sources"] == ["Nerogar/OneTrainer#720", "Nerogar/OneTrainer#458"] and torch["patterns"]

    res = run_cli("explain", "--list", "some.log")
    assert res.returncode == 2
    assert res.stderr.strip() == "otdoctor: error: --list takes no log file: give one or the other"


def test_secrets_in_a_log_stay_out_of_the_answer(run_cli):
    text = read(next(p for p in PROBLEM_LOGS if p.name == "gated-repo.log")).replace(
        "(Request ID", "(Authorization: Bearer hf_abcdefghijklmnopqrstuvwxyz0123456789; Request ID"
    )
    res = run_cli("explain", "-", input=text)
    assert res.returncode == 0
    assert "GatedRepoError" in res.stdout  # the evidence line is shown, masked
    assert "hf_abcdefghijklmnop" not in res.stdout


def test_missing_log_file_is_one_line(run_cli, tmp_path):
    res = run_cli("explain", str(tmp_path / "nope.log"))
    assert res.returncode == 2
    assert "log file not found" in res.stderr and "Traceback" not in res.stderr


def _fifo(path):
    os.mkfifo(path)


def _dev_zero(path):
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize(
    "make,named",
    [
        (lambda p: p.mkdir(), "is a folder"),  # was "log file not found" for a folder that exists
        (lambda p: p.write_bytes(b""), "is empty: nothing to explain"),  # was "No known problem recognised"
        (lambda p: p.write_bytes(b"\x93\x00\xff" * 200), "is binary data, not a text log"),  # a model/image by mistake
        (_fifo, "not a regular file (a named pipe)"),  # used to wait forever for a writer
        (_dev_zero, "not a regular file (a character device)"),  # used to read until memory ran out
    ],
)
def test_non_log_input_is_one_line(run_cli, tmp_path, make, named):
    log = tmp_path / "ot.log"
    make(log)
    res = run_cli("explain", str(log), timeout=20)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("otdoctor: error: ") and named in res.stderr.splitlines()[0]
    assert res.stdout == "" and "Traceback" not in res.stderr
    if named.startswith("not a regular"):
        assert len(res.stderr.splitlines()) == 1


def test_only_the_tail_of_a_long_log_is_read(tmp_path):
    """A log longer than the cap is read from its end: what scrolled out of the tail is not seen."""
    log = tmp_path / "ot.log"
    log.write_text("torch.OutOfMemoryError: CUDA out of memory\n" + "step 1/2\n" * 500 + "Training loss became NaN\n")
    text = read_input(str(log), limit=1024)
    assert len(text.encode()) == 1024 and text.endswith("Training loss became NaN\n")
    assert [m.problem.id for m in explain_text(text)] == ["loss-nan"]


def test_powershell_utf16_log_is_read_and_bad_format_refused(run_cli, tmp_path):
    log = tmp_path / "ot.log"
    log.write_bytes(read(next(p for p in PROBLEM_LOGS if p.name == "cuda-oom.log")).encode("utf-16"))
    res = run_cli("explain", str(log))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CUDA out of memory" in res.stdout
    res = run_cli("explain", str(log), "--format", "xml")  # was silently text
    assert res.returncode == 2 and res.stderr.strip() == "otdoctor: error: unknown --format 'xml'; choose text or json"


def test_every_otdoctor_command_in_the_table_exists():
    """The table once named `otdoctor models inspect` and `otdoctor config check`, which do not exist:
    every otdoctor command it prints must parse (subcommand and options) as the real CLI has them."""
    from tests.support.calm import run_main

    commands = {c for p in known_problems() for c in p.fix_commands() if c.startswith("otdoctor ")}
    for command in sorted(commands):
        run = run_main([*command.split()[1:], "--help"])
        assert run.code == 0, (command, run.err)
