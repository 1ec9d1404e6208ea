"""The day's new customers of many connected accounts: one mapped export task per account.

A Connect platform lands each connected account's data separately: ``accounts`` (a DAG
param, or any upstream task returning account ids) feeds
``StripeExportOperator.partial(...).expand(account_id=...)``; each mapped task sends its
account as ``Stripe-Account`` and writes ``<warehouse>/<ds>/<account>/customers.parquet``
(the path is templated on ``{{ task.account_id }}``). A manual run has no data interval:
give ``since`` and ``until`` (ISO times) in its conf. Files go under
``STRIPE_WAREHOUSE_URL`` (read at parse time; default ``/tmp/stripe-warehouse``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.operators.exports import StripeExportOperator

WAREHOUSE = os.environ.get("STRIPE_WAREHOUSE_URL", "/tmp/stripe-warehouse").rstrip("/")


@task
def connected_accounts(**context: Any) -> list[str]:
    """The accounts to export (here the ``accounts`` param; in production, e.g. a table of accounts)."""
    return list(context["params"]["accounts"])


with DAG(
    dag_id="stripe_export_accounts",
    description="Each connected account's new customers of the day, as Parquet, one mapped task per account",
    schedule=timedelta(days=1),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["stripe", "connect", "warehouse", "example"],
    params={
        "accounts": Param([], type="array", items={"type": "string"}, description="connected account ids"),
        "since": Param(None, type=["null", "string"], description="ISO start of the window (manual runs)"),
        "until": Param(None, type=["null", "string"], description="ISO end of the window (manual runs)"),
    },
    user_defined_macros={"warehouse": WAREHOUSE},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    doc_md=__doc__,
) as dag:
    StripeExportOperator.partial(
        task_id="export_customers",
        resource="customers",
        file_format="parquet",
        path="{{ warehouse }}/{{ ds }}/{{ task.account_id }}/customers.parquet",
        created_gte="{{ params.since or data_interval_start }}",
        created_lt="{{ params.until or data_interval_end }}",
    ).expand(account_id=connected_accounts())
