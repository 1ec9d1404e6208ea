#!/usr/bin/env bash
# Run the webhook signature tests against stripe 14.x, the oldest SDK the contract allows.
#
# Why: airflow_provider_stripe.webhooks.signature must give the same answers whatever stripe
# version is installed, and its tests cross-check it against the installed SDK. The main venv
# has stripe 16; this runs the same test module in a throwaway venv with stripe 14 and pytest
# only (no Airflow: neither the test module nor the module under test imports it).
#
# The venv lives in ${STRIPE14_VENV:-${TMPDIR:-/tmp}/stripe14-venv} and is reused when it
# already holds stripe 14 and pytest. STRIPE14_PYTHON picks the interpreter (default: the one
# behind the repo's .venv, else python3). Extra arguments go to pytest.
#
#   scripts/test-webhooks-stripe14.sh            # quiet run
#   scripts/test-webhooks-stripe14.sh -v -k sdk  # verbose, SDK cross-checks only
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STRIPE14_VENV:-${TMPDIR:-/tmp}/stripe14-venv}"
test_module="tests/unit/test_webhook_signature.py"

if [[ -n "${STRIPE14_PYTHON:-}" ]]; then
    python="${STRIPE14_PYTHON}"
elif [[ -x "${repo_root}/.venv/bin/python" ]]; then
    python="$(readlink -f "${repo_root}/.venv/bin/python")"
else
    python="$(command -v python3)"
fi

# uv as installed by scripts/bootstrap.sh (python3 -m uv), or on PATH.
if ! command -v uv >/dev/null; then
    uv() { python3 -m uv "$@"; }
    uv --version >/dev/null 2>&1 || { echo "uv is required: run scripts/bootstrap.sh first" >&2; exit 2; }
fi

start=${SECONDS}
ready() {
    [[ -x "${venv}/bin/python" ]] && "${venv}/bin/python" - <<'EOF' 2>/dev/null
import pytest, pytest_timeout, stripe
assert stripe.VERSION.split(".")[0] == "14", stripe.VERSION
EOF
}
if ready; then
    echo "reusing ${venv}"
else
    echo "creating ${venv} (python: ${python})"
    uv venv --quiet --clear --python "${python}" "${venv}"
    # pytest-timeout: honours the repo's [tool.pytest.ini_options] timeout.
    uv pip install --quiet --python "${venv}/bin/python" "stripe>=14,<15" pytest pytest-timeout
fi
"${venv}/bin/python" -c 'import platform, pytest, stripe; print(f"python {platform.python_version()}, stripe {stripe.VERSION}, pytest {pytest.__version__}")'
echo "venv ready in $((SECONDS - start)) s"

cd "${repo_root}"
# --noconftest: this module needs no conftest, and a repo conftest may import Airflow.
# -p no:cacheprovider: leave the repo's .pytest_cache to the main venv.
# PytestConfigWarning: the repo's pytest settings for plugins not installed here (asyncio).
PYTHONPATH="${repo_root}${PYTHONPATH:+:${PYTHONPATH}}" PYTHONDONTWRITEBYTECODE=1 \
    "${venv}/bin/python" -m pytest "${test_module}" \
    --noconftest -p no:cacheprovider -W ignore::pytest.PytestConfigWarning -q "$@"
