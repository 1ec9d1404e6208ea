#!/usr/bin/env bash
# The main job: install what is needed, then run the example payout batch DAG end to end
# (scripts/demo.py) against an embedded localstripe, or Stripe test mode with STRIPE_API_KEY set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
