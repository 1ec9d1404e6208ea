"""A throwaway Airflow installation for the tests: temp AIRFLOW_HOME, SQLite, our DAGs folder.

:func:`configure` must run before anything imports ``airflow`` (the root ``conftest.py``
calls it at import time); :func:`migrate` creates the metadata DB once per session.
Subprocesses (``airflow connections test``, ``airflow api-server``) inherit the same
environment through :func:`airflow_env`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAGS_FOLDER = REPO / "dags_examples"
BIN = Path(sys.executable).parent

LOCAL_ALLOWED_BASE_URLS = "http://127.0.0.1,http://localhost"
"""The admin allowlist (``[stripe] allowed_base_urls``) for the tests' and benchmarks' local servers:
every port on loopback, where localstripe, the stub and the fault proxy listen."""


def rate_limit_caps_env(per_minute: int, per_hour: int) -> dict[str, str]:
    """The admin options (``[stripe] max_rate_limit_per_minute`` / ``_per_hour``) letting connections
    set rate limits up to these, as environment variables: for the tests and benchmarks whose
    connections go above the contract's 1000/min and 20000/h (in-process with ``monkeypatch.setenv``,
    or merged into a subprocess's environment)."""
    from airflow_provider_stripe.constants import (
        ALLOWED_BASE_URLS_SECTION,
        MAX_RATE_LIMIT_PER_HOUR_KEY,
        MAX_RATE_LIMIT_PER_MINUTE_KEY,
    )

    section = ALLOWED_BASE_URLS_SECTION.upper()
    return {
        f"AIRFLOW__{section}__{MAX_RATE_LIMIT_PER_MINUTE_KEY.upper()}": str(per_minute),
        f"AIRFLOW__{section}__{MAX_RATE_LIMIT_PER_HOUR_KEY.upper()}": str(per_hour),
    }


_home: Path | None = None
_migrated = False
_lock = threading.Lock()


def configure() -> Path:
    """Point Airflow at a fresh temporary home (idempotent); return it."""
    global _home
    if _home is not None:
        return _home
    _home = Path(tempfile.mkdtemp(prefix="airflow-stripe-tests-"))
    env = {
        "AIRFLOW_HOME": str(_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_home}/airflow.db",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__STRIPE__ALLOWED_BASE_URLS": LOCAL_ALLOWED_BASE_URLS,
    }
    os.environ.update(env)
    return _home


def migrate() -> None:
    """``airflow db migrate`` once per test session (about 7 s)."""
    global _migrated
    with _lock:
        if _migrated:
            return
        configure()
        result = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=airflow_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        _migrated = True


def airflow_env(**extra: str) -> dict[str, str]:
    """The environment for an Airflow subprocess sharing this session's home and DB."""
    configure()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env
