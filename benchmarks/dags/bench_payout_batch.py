"""Benchmark DAG: every payout of the workload in ONE StripePayoutBatchOperator task.

Copied into the benchmark's temporary DAGs folder; the item count, worker count and
connection come from the environment (:mod:`benchmarks.workload`), read at parse time.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from benchmarks.workload import dag_settings, payout_items

COUNT, MAX_WORKERS, CONN_ID = dag_settings()

with DAG(dag_id="bench_payout_batch", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
    StripePayoutBatchOperator(
        task_id="pay",
        payouts=payout_items(COUNT, prefix=CONN_ID),  # references of its own: each run pays new ones
        max_workers=MAX_WORKERS,
        stripe_conn_id=CONN_ID,
    )
