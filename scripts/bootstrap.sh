#!/usr/bin/env bash
# Create a venv and install the provider with its test extras and what constraints/COMBO.in asks
# for (e.g. the newest combination's Celery provider for the deployment tier), pinned by
# constraints/COMBO.txt.
# Idempotent and quick when nothing changed (a stamp records what was installed).
#
# Defaults: .venv with the newest combination (constraints/airflow-3.3-stripe16-py3.11.txt) on
# $PYTHON or python3. scripts/test-matrix.sh sets COMBO, VENV and PYTHON for the other combinations.
# On a Python other than the combination's, only Airflow and the SDK are pinned (the rest of the
# pins were resolved for the combination's Python and may not exist for another).
# INSTALL=plain installs instead what the README tells users to run without Airflow's constraints
# file (scripts/compat_table.py --plain-requirements: that Airflow and the extra pins) with the
# provider built from this checkout, not editable, resolved afresh each time: no lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/combo.sh

COMBO=${COMBO:-$DEFAULT_COMBO}
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
combo_check "$COMBO"
pins_file="constraints/$COMBO.txt"
wants_file="constraints/$COMBO.in"

EXTRAS=${EXTRAS:-test}  # test (the default: the suite's tools) or local (the demo: localstripe only)
[[ "$EXTRAS" =~ ^(test|local)$ ]] || { echo "EXTRAS must be test or local, not '$EXTRAS'" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || uv venv -q -p "$PY" "$VENV"
if [ "${INSTALL:-pinned}" = plain ]; then
  mapfile -t reqs < <(python3 scripts/compat_table.py --plain-requirements "$COMBO")
  echo "bootstrap: plain install into $VENV: . [$EXTRAS] ${reqs[*]} (resolved afresh, no lock file)" >&2
  uv pip install -q -p "$VENV/bin/python" --reinstall-package airflow-provider-stripe ".[$EXTRAS]" "${reqs[@]}"
  exit 0
fi
digest=$(cat pyproject.toml "$wants_file" "$pins_file" | sha256sum | cut -c1-16)
stamp="$VENV/.installed-$EXTRAS-$digest"
[ "$EXTRAS" = local ] && [ -f "$VENV/.installed-test-$digest" ] && stamp="$VENV/.installed-test-$digest"  # test has local
if [ ! -f "$stamp" ]; then
  what="apache-airflow, stripe, localstripe"; [ "$EXTRAS" = test ] && what+=", test tools"
  echo "bootstrap: installing $COMBO ($what) into $VENV (about 1-2 min the first time)" >&2
  if "$VENV/bin/python" -c "import sys; sys.exit(f'py{sys.version_info[0]}.{sys.version_info[1]}' != '${COMBO##*-}')"; then
    pins=(-c "$pins_file")
  else
    pins=("$(grep -oE '^apache-airflow==[^ ]+' "$pins_file")" "$(grep -oE '^stripe==[^ ]+' "$pins_file")")
  fi
  uv pip install -q -p "$VENV/bin/python" -e ".[$EXTRAS]" -r "$wants_file" "${pins[@]}"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
