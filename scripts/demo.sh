#!/usr/bin/env bash
# The main job: install what is needed, then run the example payout batch DAG end to end
# (scripts/demo.py) against an embedded localstripe, or Stripe test mode with STRIPE_API_KEY set.
#
# Runs in .venv with the newest combination by default; COMBO, VENV and PYTHON pick another
# (scripts/bootstrap.sh), e.g. COMBO=airflow-3.1-stripe14-py3.10 VENV=.venvs/airflow-3.1-stripe14-py3.10.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=local bash scripts/bootstrap.sh  # the test tools are not needed to run the DAG
exec "${VENV:-.venv}/bin/python" scripts/demo.py "$@"
