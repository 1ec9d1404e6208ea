"""A Stripe report for each day: balance changes from activity, itemized, landed as CSV.

:class:`~airflow_provider_stripe.operators.reports.StripeReportRunOperator` checks that
Stripe has computed the report type for the whole day (``data_available_end``; if not, the
task fails saying so and its retries try again later), creates the report run for the
run's data interval, waits for it in the triggerer (deferrable: no worker slot held while
Stripe computes) and streams the result file from Stripe's files host to
the ``warehouse`` param (local directory or ``s3://bucket/prefix``; default
``/tmp/stripe-warehouse``), never holding it in memory.

Stripe computes report data with a delay of hours: the DAG runs each day's report with a
few hours of retries. A manual run has no data interval: give ``interval_start`` and
``interval_end`` (ISO times) in its conf; ``poll_seconds`` (default 60) sets how often the
triggerer asks Stripe.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_stripe.exports.windows import MACROS
from airflow_provider_stripe.operators.reports import StripeReportRunOperator

with DAG(
    dag_id="stripe_report_run",
    description="The day's itemized balance changes from Stripe's Reporting API, as CSV",
    schedule=timedelta(days=1),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["stripe", "reporting", "warehouse", "example"],
    user_defined_macros=MACROS,
    # A run without a data interval covers the last complete UTC day, or the interval given here.
    params={
        "warehouse": Param("/tmp/stripe-warehouse", type="string", description="local directory or object URL"),
        "poll_seconds": Param(60, type="number", exclusiveMinimum=0, description="seconds between polls"),
        "interval_start": Param(None, type=["null", "string"], description="ISO start of the report interval"),
        "interval_end": Param(None, type=["null", "string"], description="ISO end of the report interval"),
    },
    # Stripe's report data lags by hours: retry a "not available yet" failure later.
    default_args={"retries": 6, "retry_delay": timedelta(hours=1)},
    doc_md=__doc__,
) as dag:
    StripeReportRunOperator(
        task_id="balance_change_report",
        report_type="balance_change_from_activity.itemized.3",
        columns=["balance_transaction_id", "created_utc", "reporting_category", "currency", "gross", "fee", "net"],
        interval_start="{{ params.interval_start or day_window()[0] }}",
        interval_end="{{ params.interval_end or day_window()[1] }}",
        path="{{ params.warehouse.rstrip('/') }}/{{ run_day() }}/balance_change_from_activity.csv",
        deferrable=True,
        poll_interval="{{ params.poll_seconds }}",
        report_timeout=timedelta(hours=2),
    )
