#!/usr/bin/env bash
# The test command: install what is needed, then run the whole suite (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/bootstrap.sh
exec .venv/bin/pytest -p no:cacheprovider "$@"
