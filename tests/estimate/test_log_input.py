"""`--from-log` and `--start` read by the estimate package itself: a file, stdin, and the errors."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from otdoctor.errors import UserError
from otdoctor.estimate.inputs import read_log, start_time
from otdoctor.estimate.plan import predict_from_log

GUIDE_LINE = "epoch:   2%|▍                                | 3/200 [13:46<11:15:41, 205.79s/it]s=0.122]"


def test_read_log_file_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    log = tmp_path / "train.log"
    log.write_bytes(b"step \xff\n")
    assert read_log(str(log)) == "step \ufffd\n"  # undecodable bytes do not stop the reading
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert read_log("-") == "from stdin\n"


def test_read_log_missing_file_is_a_usage_error(tmp_path: Path):
    missing = tmp_path / "nope.log"
    with pytest.raises(UserError) as err:
        read_log(str(missing))
    assert err.value.message == f"cannot read --from-log {missing}: No such file or directory"
    assert err.value.exit_code == 2


def test_start_time_forms():
    assert start_time(None) is None
    zoned = start_time("2026-01-01T08:00:00+00:00")
    assert zoned == dt.datetime(2026, 1, 1, 8, tzinfo=dt.timezone.utc)
    today = start_time("07:30")
    assert today is not None and (today.hour, today.minute) == (7, 30) and today.tzinfo is not None
    with pytest.raises(UserError) as err:
        start_time("half past seven")
    assert err.value.message == "--start wants HH:MM or an ISO date-time, got 'half past seven'"


def test_predict_from_log_counts_the_final_save(tmp_path: Path):
    log = tmp_path / "train.log"
    log.write_text(GUIDE_LINE + "\n")
    out = predict_from_log(str(log), None, None, None, "2026-01-01T08:00:00+00:00")
    assert out.final_save_s is not None and out.final_save_s > 0
    assert out.prediction.remaining_s == pytest.approx(197 * 205.79)
    assert out.finish == out.now + dt.timedelta(seconds=197 * 205.79 + out.final_save_s)
