"""Where the benchmarks run: a throwaway Airflow home, byte-code caching, Stripe connections.

The Airflow home, SQLite database and subprocess environment are the test suite's
(:mod:`tests.airflow_env`), pointed at the benchmark's own temporary DAGs folder; so is the
admin allowlist ``[stripe] allowed_base_urls`` (:data:`tests.airflow_env.LOCAL_ALLOWED_BASE_URLS`),
which lets the connections send their test key to the benchmarks' loopback servers.
:func:`prepare` must run before anything imports ``airflow``.

Byte code: this workplace sets ``PYTHONDONTWRITEBYTECODE``, so every interpreter would
recompile every module it imports -- tens of milliseconds for a provider, seconds for
Airflow -- which a real deployment never pays (installers compile byte code). The
benchmarks therefore write and read byte code in a cache outside the repository
(``PYTHONPYCACHEPREFIX``), for this process and every child.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
DAG_TEMPLATES = REPO / "benchmarks" / "dags"
PYC_CACHE = Path(tempfile.gettempdir()) / "airflow-stripe-bench-pycache"
UNLIMITED = 10**9
"""A rate limit that never binds: the requests-per-minute and per-hour extras "lifted"."""


def prepare(dags_folder: Path) -> Path:
    """Point Airflow (this process and its children) at a temp home and ``dags_folder``; return the home."""
    from tests import airflow_env

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYC_CACHE)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(PYC_CACHE)
    home = airflow_env.configure()
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    return home


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a benchmark child process (same Airflow home and byte-code cache)."""
    from tests import airflow_env

    return airflow_env.airflow_env(**extra)


def migrate() -> None:
    """``airflow db migrate`` for the temp home (needed before ``dag.test()``)."""
    from tests import airflow_env

    airflow_env.migrate()


def stripe_connection(conn_id: str, base_url: str, **fields: Any) -> dict[str, str]:
    """``{"AIRFLOW_CONN_<ID>": json}``: a test-key ``stripe`` connection to ``base_url`` with further fields."""
    from airflow_provider_stripe.testing.connection import connection_env

    return connection_env(conn_id, base_url=base_url, **fields)


def unlimited_connection(conn_id: str, base_url: str, **fields: Any) -> dict[str, str]:
    """A connection whose rate limits never bind (to measure everything but the limiter's waits),
    with the admin options that allow such limits."""
    from tests import airflow_env

    return {
        **stripe_connection(
            conn_id, base_url, rate_limit_per_minute=UNLIMITED, rate_limit_per_hour=UNLIMITED, **fields
        ),
        **airflow_env.rate_limit_caps_env(UNLIMITED, UNLIMITED),
    }
