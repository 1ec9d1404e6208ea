"""The payouts every benchmark creates: the same items for the bare loop, the batch and the mapped DAG.

localstripe accepts payouts only in ``eur``; amounts vary a little so that no two items
look alike, and each item has a stable ``reference`` (what the operators key on). Each benchmark run
pays references of its own (prefixed with its connection id): a reference is paid once per Stripe account.
"""

from __future__ import annotations

import os
from typing import Any

CURRENCY = "eur"
ENV_COUNT = "STRIPE_BENCH_PAYOUTS"
ENV_WORKERS = "STRIPE_BENCH_MAX_WORKERS"
ENV_CONN_ID = "STRIPE_BENCH_CONN_ID"


def payout_items(count: int, prefix: str = "bench") -> list[dict[str, Any]]:
    """``count`` payout instructions: ``{"amount", "currency", "reference"}``."""
    return [{"amount": 100 + i % 97, "currency": CURRENCY, "reference": f"{prefix}-{i:05d}"} for i in range(count)]


def dag_settings() -> tuple[int, int, str]:
    """What a benchmark DAG file reads from its environment at parse time: count, workers, connection."""
    return int(os.environ[ENV_COUNT]), int(os.environ.get(ENV_WORKERS, "8")), os.environ[ENV_CONN_ID]


def dag_env(count: int, conn_id: str, max_workers: int = 8) -> dict[str, str]:
    """The environment :func:`dag_settings` reads."""
    return {ENV_COUNT: str(count), ENV_WORKERS: str(max_workers), ENV_CONN_ID: conn_id}
