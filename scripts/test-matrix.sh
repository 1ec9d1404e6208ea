#!/usr/bin/env bash
# Run test tiers of one combination (Airflow x stripe x Python) in its own venv.
#
#   scripts/test-matrix.sh COMBO [TIER ...] [-- PYTEST_ARGS ...]
#   scripts/test-matrix.sh airflow-3.1-stripe14-py3.10 unit integration airflow demo -- -q
#
# COMBO names constraints/COMBO.in/.txt (scripts/pin.sh). TIERs: unit, integration, airflow
# (tests/<tier>), all (the whole suite in one pytest run), demo (scripts/demo.sh), plain (the demo
# in .venvs/plain-COMBO, installed as the README tells users without Airflow's constraints file:
# INSTALL=plain in scripts/bootstrap.sh); default: unit integration. The venv is .venv for the default (newest) combination, .venvs/COMBO otherwise;
# it is reused while pyproject.toml and the pins are unchanged (scripts/bootstrap.sh).
# Each tier's counts and duration go to test-output/matrix/COMBO.json (tests/results.py; read by
# scripts/compat_table.py for the README's compatibility table); `all` records unit, integration
# and airflow separately. Exit status: 1 if any tier failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/combo.sh

[ $# -ge 1 ] || { echo "usage: scripts/test-matrix.sh COMBO [TIER ...] [-- PYTEST_ARGS ...]" >&2; exit 2; }
combo=$1; shift
combo_check "$combo"
tiers=(); while [ $# -gt 0 ] && [ "$1" != -- ]; do tiers+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ ${#tiers[@]} -gt 0 ] || tiers=(unit integration)

if [ "$combo" = "$DEFAULT_COMBO" ]; then venv=.venv; else venv=.venvs/$combo; fi
python=$(combo_python "$combo")
export COMBO=$combo VENV=$venv PYTHON=$python
if [ "${tiers[*]}" != plain ]; then  # the plain tier needs neither the pinned venv nor system services
  bash scripts/system-packages.sh
  bash scripts/bootstrap.sh
fi

out=test-output/matrix; mkdir -p "$out"
results="$out/$combo.json"
status=0
for tier in "${tiers[@]}"; do
  start=$SECONDS
  case $tier in
    unit|integration|airflow) paths=("tests/$tier") ;;
    all|demo|plain) paths=() ;;
    *) echo "unknown tier '$tier' (unit, integration, airflow, all, demo, plain)" >&2; exit 2 ;;
  esac
  echo "== $combo: $tier" >&2
  if [ "$tier" = demo ] || [ "$tier" = plain ]; then
    tier_venv=$venv; [ "$tier" = plain ] && tier_venv=.venvs/plain-$combo
    rc=0; INSTALL=$([ "$tier" = plain ] && echo plain || echo pinned) VENV=$tier_venv \
      bash scripts/demo.sh >"$out/$combo-$tier.log" 2>&1 || rc=$?
    tail -n 12 "$out/$combo-$tier.log"
    "$tier_venv/bin/python" -m tests.results record "$results" "$tier" --exit-status "$rc" --seconds $((SECONDS - start))
  else
    rc=0
    STRIPE_TEST_RESULTS="$results" "$venv/bin/python" -m pytest -p no:cacheprovider "${paths[@]}" "$@" || rc=$?
  fi
  echo "== $combo: $tier: exit $rc after $((SECONDS - start)) s" >&2
  [ "$rc" -eq 0 ] || status=1
done
exit $status
