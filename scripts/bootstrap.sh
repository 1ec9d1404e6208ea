#!/usr/bin/env bash
# Create .venv and install the provider with its test extras, pinned by constraints.txt.
# Idempotent and quick when nothing changed (a stamp records what was installed).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -m uv --version >/dev/null 2>&1; then
  "$PY" -m pip install -q --disable-pip-version-check uv
fi
uv() { "$PY" -m uv "$@"; }

[ -x .venv/bin/python ] || uv venv -q -p "$PY" .venv
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing apache-airflow, stripe, localstripe and test tools into .venv (about 1-2 min the first time)" >&2
  if .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    pins=(-c constraints.txt)  # constraints.txt was resolved on Python 3.11
  else
    pins=("$(grep -E '^apache-airflow==' constraints.txt)" "$(grep -E '^stripe==' constraints.txt)")
  fi
  uv pip install -q -p .venv/bin/python -e ".[test]" "${pins[@]}"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
