"""Benchmark DAG: the same payouts as ``bench_payout_batch``, one mapped task per payout.

``StripeCreatePayoutOperator.partial(...).expand_kwargs(...)`` over the workload's items
(:mod:`benchmarks.workload`); count and connection come from the environment.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_stripe.operators.payouts import StripeCreatePayoutOperator
from benchmarks.workload import dag_settings, payout_items

COUNT, _, CONN_ID = dag_settings()

with DAG(dag_id="bench_payouts_mapped", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
    StripeCreatePayoutOperator.partial(task_id="pay", stripe_conn_id=CONN_ID).expand_kwargs(
        payout_items(COUNT, prefix=CONN_ID)  # references of its own: each run pays new ones
    )
