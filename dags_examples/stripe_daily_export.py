"""Export each day's Stripe charges and payouts to JSON Lines files.

Each run covers its data interval, one UTC day ``[data_interval_start, data_interval_end)``
(a ``CronDataIntervalTimetable``: a plain cron schedule would give runs an empty interval). A
manual run without a logical date has no data interval: it covers the last complete UTC day
before it was triggered (:func:`airflow_provider_stripe.exports.windows.day_window`).
:class:`~airflow_provider_stripe.operators.exports.StripeExportOperator` (``resource="charges"``,
``resource="payouts"``) pages through Stripe with auto-pagination and writes one object per
line as it goes, so memory stays flat on busy days. The files land in ``<export_dir>/charges/<day>.jsonl`` and
``<export_dir>/payouts/<day>.jsonl``; ``export_dir`` may be a local directory or an object
storage URL (``s3://bucket/stripe``; set ``storage_conn_id`` on the operators). Rerunning a
day replaces its files. Each task returns ``{"path", "count", ...}`` as XCom.

Runs against whatever the ``stripe_default`` connection points to. Charge objects hold
customer data (billing details, emails): store the exports accordingly.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Param

from airflow_provider_stripe.compat import CronDataIntervalTimetable
from airflow_provider_stripe.exports.windows import MACROS
from airflow_provider_stripe.operators.exports import StripeExportOperator

STRIPE_CONN_ID = "stripe_default"
DAY = "{{ day_window()[0] | ds }}"
WINDOW = {"created_gte": "{{ day_window()[0] }}", "created_lt": "{{ day_window()[1] }}"}

with DAG(
    dag_id="stripe_daily_export",
    description="Export the day's Stripe charges and payouts to JSON Lines",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["stripe", "export", "example"],
    params={"export_dir": Param("/tmp/stripe-exports", type="string", description="local directory or object URL")},
    user_defined_macros=MACROS,
) as dag:
    StripeExportOperator(
        task_id="export_charges",
        resource="charges",
        stripe_conn_id=STRIPE_CONN_ID,
        path="{{ params.export_dir }}/charges/" + DAY + ".jsonl",
        **WINDOW,
    )
    StripeExportOperator(
        task_id="export_payouts",
        resource="payouts",
        stripe_conn_id=STRIPE_CONN_ID,
        path="{{ params.export_dir }}/payouts/" + DAY + ".jsonl",
        **WINDOW,
    )
