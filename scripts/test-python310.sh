#!/usr/bin/env bash
# Run the unit and integration tests on Python 3.10, the oldest Python the provider supports.
#
# constraints.txt pins versions for Python 3.11 (pendulum's dateutil needs 3.11 there), so this
# venv pins only Airflow and the Stripe SDK to CI's versions and lets the rest resolve for 3.10.
# The venv lives in ${PY310_VENV:-${TMPDIR:-/tmp}/py310-venv} and is reused. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

is310() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; }
python310=""
for candidate in "${PYTHON310:-}" "$(command -v python3.10 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do
  if is310 "$candidate"; then python310=$candidate; break; fi
done
if [ -z "$python310" ]; then
  echo "python3.10 not found: Python 3.10 run not done (set PYTHON310=/path/to/python3.10)" >&2
  exit 0
fi
uv() { python3 -m uv "$@"; }
venv=${PY310_VENV:-${TMPDIR:-/tmp}/py310-venv}
airflow=$(grep -E '^apache-airflow==' constraints.txt)
sdk=$(grep -E '^stripe==' constraints.txt)
[ -x "$venv/bin/python" ] || uv venv -q -p "$python310" "$venv"
uv pip install -q -p "$venv/bin/python" -e ".[test]" "$airflow" "$sdk"
exec "$venv/bin/python" -m pytest -p no:cacheprovider tests/unit tests/integration "$@"
