"""The warehouse day: pay out, wait until paid, reconcile each payout, land the day's payouts as Parquet.

1. ``create_payouts`` -- the daily payout batch (exactly once; see ``stripe_payout_batch``).
2. ``wait_for_payouts`` -- the deferrable sensor: the triggerer waits until every payout is paid.
3. ``reconcile`` -- :class:`~airflow_provider_stripe.operators.reconciliation.StripePayoutReconciliationOperator`
   lists what each payout settled (``/v1/balance_transactions?payout=``), one row per balance
   transaction with the payout id on every row, to Parquet. Payouts the batch creates are
   *manual* (Stripe cannot itemize them): each is one row saying so. Automatic payouts
   (Stripe's own schedule) are itemized; to reconcile those, drop ``payout_ids`` and the
   task takes every payout that arrived in the data interval.
4. ``export_payouts`` -- :class:`~airflow_provider_stripe.operators.exports.StripeExportOperator`
   lands the payouts *changed* in the data interval (created, paid, failed...), each once in
   its latest state, as Parquet with a stable schema: the warehouse stays correct without
   full re-exports. A run without a data interval (a manual run without a logical date)
   covers the last complete UTC day (:mod:`airflow_provider_stripe.exports.windows`); or give
   ``changes_since`` and ``changes_until`` (ISO times) in the run's conf.

Instructions are ``data/payouts/<run day>.jsonl`` next to this file, or the run's
``instructions_file``. Files go under the run's ``warehouse`` param (a local directory or
``s3://bucket/prefix``; default ``/tmp/stripe-warehouse``), one folder per day. Nothing is
read from the environment at parse time. Every task reports
OpenLineage (``stripe://<account>/<resource>`` to the file) when the OpenLineage provider is
installed, and the money tasks link to the Stripe Dashboard.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_provider_stripe.exports.windows import MACROS
from airflow_provider_stripe.operators.exports import StripeExportOperator
from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from airflow_provider_stripe.operators.reconciliation import StripePayoutReconciliationOperator
from airflow_provider_stripe.sensors.payouts import DEFAULT_POLL_INTERVAL, StripePayoutSensor

STRIPE_CONN_ID = "stripe_default"
INSTRUCTIONS_DIR = Path(__file__).resolve().parent / "data" / "payouts"
WAIT_FOR_PAID = timedelta(days=5)
DAY = "{{ run_day() }}"
FOLDER = "{{ params.warehouse.rstrip('/') }}/" + DAY

with DAG(
    dag_id="stripe_warehouse",
    description="Daily payouts, reconciled transaction by transaction, and the day's payout changes, as Parquet",
    schedule=timedelta(days=1),  # a data interval of one day per run
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["stripe", "payouts", "warehouse", "example"],
    params={
        "instructions_file": Param(
            None,
            type=["null", "string"],
            description="JSON Lines file of the payouts to make (default: data/payouts/<run day>.jsonl)",
        ),
        "warehouse": Param("/tmp/stripe-warehouse", type="string", description="local directory or object URL"),
        "poll_seconds": Param(
            DEFAULT_POLL_INTERVAL.total_seconds(),
            type="number",
            exclusiveMinimum=0,
            description="seconds between the sensor's polls of Stripe",
        ),
        # A manual run has no data interval (start == end): give the changes window instead.
        "changes_since": Param(None, type=["null", "string"], description="ISO start of the changes export window"),
        "changes_until": Param(None, type=["null", "string"], description="ISO end of the changes export window"),
    },
    user_defined_macros={**MACROS, "instructions_dir": str(INSTRUCTIONS_DIR)},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
) as dag:
    create_payouts = StripePayoutBatchOperator(
        task_id="create_payouts",
        payouts="{{ params.instructions_file or instructions_dir ~ '/' ~ run_day() ~ '.jsonl' }}",
        stripe_conn_id=STRIPE_CONN_ID,
    )
    wait_for_payouts = StripePayoutSensor(
        task_id="wait_for_payouts",
        payout_ids=create_payouts.output,
        stripe_conn_id=STRIPE_CONN_ID,
        deferrable=True,
        poll_interval="{{ params.poll_seconds }}",
        timeout=WAIT_FOR_PAID.total_seconds(),
    )
    reconcile = StripePayoutReconciliationOperator(
        task_id="reconcile",
        payout_ids=create_payouts.output,
        path=FOLDER + "/payout_transactions.parquet",
        file_format="parquet",
        stripe_conn_id=STRIPE_CONN_ID,
    )
    export_payouts = StripeExportOperator(
        task_id="export_payouts",
        resource="payouts",
        mode="changes",
        created_gte="{{ params.changes_since or day_window()[0] }}",
        created_lt="{{ params.changes_until or day_window()[1] }}",
        path=FOLDER + "/payouts_changed.parquet",
        file_format="parquet",
        stripe_conn_id=STRIPE_CONN_ID,
    )
    wait_for_payouts >> reconcile >> export_payouts
