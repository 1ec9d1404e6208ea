"""Two payout batches at once on one connection whose rate limit is shared through Redis.

``stripe_limited`` allows 60 requests a minute, kept in Redis (``rate_limit_storage_uri``), so
the two task processes together must never exceed it upstream.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator

with DAG(
    dag_id="deploy_shared_rate_limit",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"first": Param("", type="string"), "second": Param("", type="string")},
    tags=["deployment-tests"],
):
    for name in ("first", "second"):
        StripePayoutBatchOperator(
            task_id=f"pay_{name}",
            payouts=f"{{{{ params.{name} }}}}",
            stripe_conn_id="stripe_limited",
            max_workers=4,
        )
