"""Helpers shared by the tests: real fixtures (checkouts, venvs, wheels, servers) made at test time."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
NVML_DATA = TESTS / "data" / "nvml"
