"""The day's new customers of many connected accounts: one mapped export task per account.

A Connect platform lands each connected account's data separately: ``accounts`` (a DAG
param, or any upstream task returning account ids) feeds
``StripeExportOperator.partial(...).expand(account_id=...)``; each mapped task sends its
account as ``Stripe-Account`` and writes ``<warehouse>/<ds>/<account>/customers.parquet``
(the path is templated on ``{{ task.account_id }}``). A run without a data interval covers
the last complete UTC day, or ``since`` and ``until`` (ISO times) from its conf. Files go
under the run's ``warehouse`` param (default ``/tmp/stripe-warehouse``).

Account ids are checked twice before any folder is made: the ``accounts`` param only takes
Stripe account ids (a run with ``accounts=["../../x"]`` is refused when triggered), and each
mapped task checks its own (ids from any other source).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.exports.windows import MACROS
from airflow_provider_stripe.operators.exports import StripeExportOperator
from airflow_provider_stripe.validation import ACCOUNT_ID_RE


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
        "warehouse": Param("/tmp/stripe-warehouse", type="string", description="local directory or object URL"),
        "accounts": Param(
            [],
            type="array",
            items={"type": "string", "pattern": f"^{ACCOUNT_ID_RE.pattern}$"},
            description="connected account ids (acct_...)",
        ),
        "since": Param(None, type=["null", "string"], description="ISO start of the window (manual runs)"),
        "until": Param(None, type=["null", "string"], description="ISO end of the window (manual runs)"),
    },
    user_defined_macros=MACROS,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    doc_md=__doc__,
) as dag:
    StripeExportOperator.partial(
        task_id="export_customers",
        resource="customers",
        file_format="parquet",
        path="{{ params.warehouse.rstrip('/') }}/{{ run_day() }}/{{ task.account_id }}/customers.parquet",
        created_gte="{{ params.since or day_window()[0] }}",
        created_lt="{{ params.until or day_window()[1] }}",
    ).expand(account_id=connected_accounts())
