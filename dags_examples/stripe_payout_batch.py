"""The daily payout batch: read the day's instructions, pay each exactly once, wait until paid, report.

1. ``create_payouts`` -- :class:`~airflow_provider_stripe.operators.payouts.StripePayoutBatchOperator`
   reads the day's JSON Lines file (one payout per line: ``reference``, ``amount`` in minor
   units, ``currency``, optional ``description``, ``statement_descriptor``, ``metadata``...),
   validates every line before sending anything, then creates each payout once: retries,
   crashes and lost answers reuse the item's idempotency key and find earlier payouts, so
   nothing is paid twice.
2. ``wait_for_payouts`` -- :class:`~airflow_provider_stripe.sensors.payouts.StripePayoutSensor`,
   deferrable: the triggerer polls Stripe (100 payouts per request) until every payout is
   ``paid``; a ``failed`` or ``canceled`` payout fails the task at once with its
   ``failure_code`` and ``failure_message``.
3. ``report`` -- one summary (created, already existing, paid, amounts per currency),
   logged and returned as XCom for whatever consumes it downstream.

Where the instructions come from: ``data/payouts/<ds>.jsonl`` next to this file, or the
path (local or ``s3://...``) given as the run's ``instructions_file`` param. A small
sample ships as ``data/payouts/sample.jsonl``; ``scripts/demo.py`` runs this DAG on it
against a local Stripe-compatible server.

Timings come from the environment, read once at parse time (no Variable or connection
lookups while parsing): ``STRIPE_PAYOUT_POLL_SECONDS`` (default 600),
``STRIPE_PAYOUT_GRACE_SECONDS`` (default 0: succeed as soon as every payout is paid) and
``STRIPE_PAYOUT_WAIT_SECONDS`` (default 5 days: a bank transfer takes a few business days).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from airflow_provider_stripe.sensors.payouts import StripePayoutSensor

STRIPE_CONN_ID = "stripe_default"
INSTRUCTIONS_DIR = Path(__file__).resolve().parent / "data" / "payouts"
POLL_SECONDS = float(os.environ.get("STRIPE_PAYOUT_POLL_SECONDS", "600"))
GRACE_SECONDS = float(os.environ.get("STRIPE_PAYOUT_GRACE_SECONDS", "0"))
WAIT_SECONDS = float(os.environ.get("STRIPE_PAYOUT_WAIT_SECONDS", str(timedelta(days=5).total_seconds())))


@task
def report(batch: dict[str, Any], settled: dict[str, Any]) -> dict[str, Any]:
    """Log and return what the run did: counts per outcome, amounts per currency, paid payout ids."""
    import logging

    summary = batch.get("summary", {})
    result = {
        "run": summary.get("run"),
        "instructions": summary.get("total", 0),
        "created": summary.get("created", 0),
        "already_existing": summary.get("existing", 0),
        "failed_to_create": summary.get("failed", 0),
        "amounts": summary.get("amounts", {}),
        "paid": settled.get("count", 0),
        "payout_ids": settled.get("payout_ids", []),
    }
    logging.getLogger(__name__).info("Payout batch report: %s", result)
    return result


with DAG(
    dag_id="stripe_payout_batch",
    description="Pay out the day's instructions through Stripe exactly once, wait until paid, report",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # one batch at a time: a day's payouts never race the next day's
    tags=["stripe", "payouts", "example"],
    params={
        "instructions_file": Param(
            None,
            type=["null", "string"],
            description="JSON Lines file of the payouts to make (default: data/payouts/<ds>.jsonl)",
        )
    },
    user_defined_macros={"instructions_dir": str(INSTRUCTIONS_DIR)},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
) as dag:
    create_payouts = StripePayoutBatchOperator(
        task_id="create_payouts",
        payouts="{{ params.instructions_file or instructions_dir ~ '/' ~ ds ~ '.jsonl' }}",
        max_workers=4,
        stripe_conn_id=STRIPE_CONN_ID,
    )
    wait_for_payouts = StripePayoutSensor(
        task_id="wait_for_payouts",
        payout_ids=create_payouts.output,
        stripe_conn_id=STRIPE_CONN_ID,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        grace_period=GRACE_SECONDS or None,
        timeout=WAIT_SECONDS,
    )
    # XComArgs: resolved to the two tasks' dicts at run time.
    report(create_payouts.output, wait_for_payouts.output)  # type: ignore[arg-type]
