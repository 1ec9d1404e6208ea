#!/usr/bin/env bash
# The test command: install what is needed, then run the whole suite (extra args go to pytest).
#   bash scripts/test.sh --fast [PYTEST_ARGS]   the quick loop: unit and integration tests without
#                                               Airflow processes, minus those marked slow
set -euo pipefail
cd "$(dirname "$0")/.."
fast=()
if [ "${1:-}" = --fast ]; then shift; fast=(tests/unit tests/integration -m "not slow"); fi
bash scripts/system-packages.sh
bash scripts/bootstrap.sh
exec .venv/bin/pytest -p no:cacheprovider "${fast[@]}" "$@"
