"""Run Airflow subprocesses the way an installed provider runs: outside the source checkout.

Why: building the editable install leaves ``airflow_provider_stripe.egg-info`` in the repo
root. With the checkout on ``sys.path`` (as the current directory or on ``PYTHONPATH``),
Airflow's plugin loader sees the ``airflow.plugins`` entry point twice and reports
"Plugin 'stripe' already registered" as a plugin import error -- in the UI too -- which a
provider installed from a wheel never does. The package itself is installed (editable),
so nothing needs the checkout on the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests import airflow_env


def installed_env(**extra: str) -> dict[str, str]:
    """``tests.airflow_env.airflow_env()`` without the checkout on ``PYTHONPATH``."""
    env = airflow_env.airflow_env(**extra)
    repo = str(airflow_env.REPO)
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != repo)
    return env


def neutral_cwd() -> Path:
    """A working directory outside the checkout: the session's AIRFLOW_HOME."""
    return airflow_env.configure()
