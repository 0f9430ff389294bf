#!/usr/bin/env bash
# The whole test suite, from scratch: make a venv, install otdoctor with its test extras, run ruff,
# mypy and scripts/check_structure.py (layers, sizes; the suite stops at the first breach), then pytest.
# Then the suite runs again under the oldest Python otdoctor supports (pyenv's 3.10).
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k gpu     # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
pick() {  # newest installed pyenv version with this prefix, else a python3.X on PATH
  local want=$1 found
  found=$(ls -d "$PYENV_ROOT"/versions/"$want".* 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ]; then echo "$found/bin/python"; else command -v "python$want"; fi
}

run_suite() {
  local py=$1 venv=$2; shift 2
  if [ ! -x "$venv/bin/python" ]; then "$py" -m venv "$venv"; fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
  if [ "${OTDOCTOR_LINT:-1}" = 1 ]; then
    echo "== ruff and mypy =="
    "$venv/bin/ruff" check .
    "$venv/bin/ruff" format --check .
    "$venv/bin/mypy"
    "$venv/bin/python" scripts/check_structure.py
  fi
  echo "== pytest on $("$venv/bin/python" --version) =="
  "$venv/bin/python" -m pytest "$@"
}

run_suite "$(pick 3.11)" .venv "$@"
if [ "${OTDOCTOR_SKIP_OLDEST:-0}" != 1 ]; then
  OTDOCTOR_LINT=0 run_suite "$(pick 3.10)" .venv-3.10 -m "not slow and not property" "$@"
fi
