"""Issue 12: the config checks stay calm on any training config a user can write.

Generated configs (tests/estimate/strategies.py) go through every check of the config area on a real
Context, and the report through the text and JSON renderers; a bad config must be a finding about
that file (config.file FAIL, the rest SKIP), never an ERROR of a check, never output that a UTF-8
terminal cannot print. The inputs that once crashed a check are kept below as plain tests.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from otdoctor.engine.doctor import make_context, run_doctor
from otdoctor.engine.results import Report, Status
from otdoctor.probe import Probe
from tests.estimate.strategies import concept_file, concepts, config_texts, isolated_env
from tests.support.calm import assert_calm, run_main
from tests.support.trainingdata import concept, full_config, images, write_json

ROOT = Path(tempfile.mkdtemp(prefix="otdoctor-config-props-"))
FOLDER = ROOT / "data" / "me"
images(FOLDER, 2)
HOME = ROOT / "home"
HOME.mkdir()
ENV = isolated_env(HOME, PATH="/usr/bin:/bin")
CONFIG = ROOT / "config.json"


def diagnose(text: str, concept_items: list | None = None) -> Report:
    """Every check of the config area on TEXT as the config, with CONCEPT_ITEMS (else one concept of
    two images) in the concept file it names by default, training_concepts/concepts.json."""
    concept_file(ROOT, [concept("me", str(FOLDER))] if concept_items is None else concept_items)
    CONFIG.write_text(text, encoding="utf-8", errors="surrogatepass")
    probe = Probe(env=dict(ENV), cwd=ROOT, home=HOME)
    return run_doctor(make_context(probe, ROOT, CONFIG), ("config",))


def assert_findings(report: Report) -> None:
    """Every check gave a finding; both renderings are printable by a UTF-8 terminal."""
    from otdoctor.render import jsonout, text

    crashed = [(o.check_id, o.result.summary) for o in report.outcomes if o.result.status is Status.ERROR]
    assert not crashed, crashed
    out = io.StringIO()
    text.render(report, text.console(file=out))
    for rendered in (out.getvalue(), jsonout.render(report, False)):
        rendered.encode("utf-8")  # a lone surrogate raises here, as it did on stdout
    file_result = next(o.result for o in report.outcomes if o.check_id == "config.file")
    if file_result.status is Status.FAIL:
        assert all(o.result.status is Status.SKIP for o in report.outcomes if o.check_id != "config.file")


@pytest.mark.property
@given(config_texts(str(FOLDER)), st.none() | concepts(str(FOLDER)))
@example('{"\\ud800": 1, "epochs": 2}', None)
@example("[" * 100_000, None)
@example('{"epochs": ' + "9" * 5000 + "}", None)
@example(json.dumps(full_config(learning_rate="SECOND")), None)
@example(json.dumps(full_config(resolution="1")), None)
@example(json.dumps(full_config(epochs=99999999999)), None)
@example(json.dumps(full_config(concepts=[concept("me", str(FOLDER), balancing="inf")])), None)
@example(json.dumps(full_config(concepts=[concept("me", "~nosuchuser/x")])), None)
@example(json.dumps(full_config(resolution="512")), [concept("me", "~nosuchuser/x", balancing="inf")])
def test_any_config_is_a_finding(text: str, concept_items: list | None) -> None:
    started = time.monotonic()
    assert_findings(diagnose(text, concept_items))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "settings,problem",
    [
        ({"learning_rate": "SECOND"}, 'learning_rate "SECOND" is not a finite number'),
        ({"resolution": "1"}, 'resolution "1" has 1 px, outside 64..16384'),
        ({"epochs": 99999999999}, "epochs 99999999999 is beyond 10,000,000"),
        ({"concepts": [concept("me", "data/me", balancing="inf")]}, 'balancing "inf" is not a finite number'),
        ({"unet": {"learning_rate": 1e400}}, "unet: learning_rate Infinity is not a finite number"),
        ({"concepts": [concept("me", "a\x00b")]}, "holds a NUL character"),
    ],
)
def test_bad_values_fail_config_file_and_skip_the_rest(settings: dict, problem: str) -> None:
    report = diagnose(json.dumps(full_config(**{"resolution": "512", **settings})))
    assert_findings(report)
    result = next(o.result for o in report.outcomes if o.check_id == "config.file")
    assert result.status is Status.FAIL
    assert problem in result.summary and any(problem in d for d in result.details)
    assert "correct the values named above" in result.fix.summary


def test_unknown_home_in_a_concept_path_is_a_missing_folder_not_a_crash() -> None:
    report = diagnose(json.dumps(full_config(resolution="512", concepts=[concept("me", "~nosuchuser/x")])))
    assert_findings(report)
    result = next(o.result for o in report.outcomes if o.check_id == "config.concepts")
    assert result.status is Status.FAIL
    assert f"{ROOT}/~nosuchuser/x does not exist" in result.details[0]


@pytest.mark.parametrize(
    "text,said",
    [
        ("[" * 100_000, "nests deeper than 64 levels"),
        ('{"epochs": ' + "9" * 5000 + "}", "holds an integer of more than 4,300 digits"),
        ("\ufeff{}", "not valid JSON"),
    ],
)
def test_unreadable_json_is_one_fail_line(text: str, said: str) -> None:
    report = diagnose(text)
    assert_findings(report)
    result = next(o.result for o in report.outcomes if o.check_id == "config.file")
    assert result.status is Status.FAIL and said in result.summary and "\n" not in result.summary


def test_lone_surrogate_key_prints_as_its_escape(tmp_path: Path, base_env: dict[str, str], run_cli) -> None:
    cfg = write_json(tmp_path / "c.json", {"\ud800x": 1, "epochs": 2})
    r = run_cli("check", "--config", str(cfg), "--only", "config", "--ot-dir", str(tmp_path))
    assert "UnicodeEncodeError" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert "unknown key(s) in the config: \\ud800x" in r.stdout


def test_a_fifo_as_config_is_refused_not_waited_on(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)
    run = run_main(["check", "--config", str(fifo), "--only", "config", "--ot-dir", str(ROOT)], ENV)
    assert_calm(run)
    assert run.code == 2 and "is not a regular file" in run.err


@pytest.mark.property
@settings(max_examples=40)
@given(config_texts(str(FOLDER)))
def test_end_to_end_check_and_estimate_stay_calm(text: str) -> None:
    # A few dozen whole runs through the real entry point, text and JSON.
    CONFIG.write_text(text, encoding="utf-8", errors="surrogatepass")
    concept_file(ROOT, [concept("me", str(FOLDER))])
    for argv in (
        ["check", "--config", str(CONFIG), "--ot-dir", str(ROOT), "--only", "config"],
        ["check", "--config", str(CONFIG), "--ot-dir", str(ROOT), "--only", "config", "--format", "json"],
        ["estimate", "--config", str(CONFIG), "--ot-dir", str(ROOT), "--its", "1"],
    ):
        run = run_main(argv, ENV)
        assert_calm(run)
        (run.out + run.err).encode("utf-8")
