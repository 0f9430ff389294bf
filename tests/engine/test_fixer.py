"""`otdoctor fix` as one call: the request reaches the checks, and a wrong name is a usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from otdoctor.engine.fixer import FixRequest, fix
from otdoctor.errors import UserError
from otdoctor.probe import Probe


class _Silent:
    """A fix UI that shows nothing and answers no."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        def record(*_args: object) -> bool:
            self.calls.append(name)
            return False

        return record


def test_unknown_check_name_is_a_usage_error_before_any_fix(base_env: dict[str, str], home: Path, tmp_path: Path):
    ui = _Silent()
    with pytest.raises(UserError) as err:
        fix(Probe(env=base_env, home=home, cwd=tmp_path), FixRequest(patterns=("no.such.check",)), ui)
    assert err.value.exit_code == 2
    assert ui.calls == []
