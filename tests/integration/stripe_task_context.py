"""Helpers for running Stripe operators' ``execute`` directly: a connection and a task context.

The connection is a real Airflow connection read from an ``AIRFLOW_CONN_<ID>`` env var (as
Airflow resolves it); the context carries the task-instance identity the operators use
(dag_id, run_id, task_id, map_index, try_number) and, for exports, a data interval.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_stripe.testing.connection import connection_env

TEST_KEY = "sk_test_51OperatorTestsKey"
LIVE_KEY = "sk_live_51OperatorTestsKey"
WHSEC = "whsec_operatortests"

_ids = itertools.count()


def stripe_connection(monkeypatch: pytest.MonkeyPatch, base_url: str, *, api_key: str = TEST_KEY, **extra: Any) -> str:
    """Register a fresh ``stripe`` connection pointing at ``base_url``; return its conn_id."""
    conn_id = f"stripe_ops_test_{next(_ids)}"
    for name, value in connection_env(
        conn_id, api_key=api_key, base_url=base_url, **{"webhook_secret": WHSEC, **extra}
    ).items():
        monkeypatch.setenv(name, value)
    return conn_id


def task_context(
    *,
    dag_id: str = "stripe_ops_tests",
    run_id: str = "manual__2026-01-01T00:00:00+00:00",
    task_id: str = "op",
    map_index: int = -1,
    try_number: int = 1,
    **extra: Any,
) -> Any:
    """A minimal task context: ``ti`` with the identity fields, plus ``extra`` keys."""
    ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number)
    return {"ti": ti, **extra}
