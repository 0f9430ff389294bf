"""Help texts that describe behaviour users rely on: they must say what the code does."""

from __future__ import annotations

from tests.support.calm import run_main


def _help(argv: list[str]) -> str:
    run = run_main([*argv, "--help"], {"COLUMNS": "200", "NO_COLOR": "1"})
    assert run.code == 0
    return " ".join(run.out.split())


def test_fix_force_help_says_it_adds_sigkill_not_that_it_allows_stopping() -> None:
    text = _help(["fix"])
    assert "also SIGKILL the processes that ignore SIGTERM" in text
    assert "Allow fixes that stop processes" not in text


def test_models_verify_help_names_ctime_in_the_cache_key() -> None:
    assert "(device, inode, size, mtime, ctime)" in _help(["models", "verify"])
