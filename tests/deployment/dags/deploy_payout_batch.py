"""A payout batch through a slow connection, with fast retries: what the deployment tier clears and kills.

``stripe_proxied`` reaches the local Stripe through a proxy adding latency to each request, so a
batch of a few hundred items runs long enough to be interrupted mid-way; the retry delay is
short so the scheduler's retry is seen within the test.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator

with DAG(
    dag_id="deploy_payout_batch",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"instructions_file": Param("", type="string")},
    default_args={"retries": 3, "retry_delay": timedelta(seconds=2)},
    tags=["deployment-tests"],
):
    StripePayoutBatchOperator(
        task_id="create_payouts",
        payouts="{{ params.instructions_file }}",
        stripe_conn_id="stripe_proxied",
        max_workers=2,
    )
