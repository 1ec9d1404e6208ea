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
3. ``report`` -- one summary (created, already existing, already paid by another run of
   this DAG, paid, amounts per currency, and what the run did by try), logged and returned
   as XCom for whatever consumes it downstream.

Triggering the DAG again for the same instructions (instead of clearing the run) pays
nobody twice: every line has a ``reference``, so the batch's cross-run protection refuses
references another run of this DAG paid in the last 7 days (``already_paid_by_run``).

Where the instructions come from: the run's ``instructions_file`` param (a local path or
``s3://...``), else ``data/payouts/<run day>.jsonl`` next to this file, where the run day is
the logical date's (``ds``) or, for a manual run without a logical date, the day it was
triggered (:func:`airflow_provider_stripe.exports.windows.run_day`). ``find_instructions`` checks
first: a day without a file has nothing to pay, so the rest of the run is skipped and the run
succeeds (an unpaused DAG does not retry or block on days you have no payouts for); a given
``instructions_file`` that does not exist fails the run at once, without retries. A small
sample ships as ``data/payouts/sample.jsonl``; ``scripts/demo.py`` runs this DAG on it against
a local Stripe-compatible server.

The sensor polls Stripe every ``poll_seconds`` (run param, default 60 s) for up to five days
(a bank transfer takes a few business days). Invalid instructions, a missing file or a broken
connection fail a task without retries; network trouble is retried (twice, a minute apart).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.exports.windows import run_day
from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from airflow_provider_stripe.sensors.payouts import DEFAULT_POLL_INTERVAL, StripePayoutSensor

STRIPE_CONN_ID = "stripe_default"
INSTRUCTIONS_DIR = Path(__file__).resolve().parent / "data" / "payouts"
WAIT_FOR_PAID = timedelta(days=5)


@task.short_circuit
def find_instructions(**context: Any) -> str | None:
    """The run's instructions file; ``None`` (skip the rest of the run) when the day has none."""
    import logging

    from airflow_provider_stripe.compat import AirflowFailException

    given = context["params"]["instructions_file"]
    if given:
        if "://" not in given and not Path(given).is_file():
            raise AirflowFailException(f"instructions_file {given!r} does not exist on this worker: fix the path")
        return str(given)
    path = INSTRUCTIONS_DIR / f"{run_day(context)}.jsonl"
    if path.is_file():
        return str(path)
    logging.getLogger(__name__).info("No payout instructions at %s: nothing to pay for this run", path)
    return None


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
        "already_paid_by_run": summary.get("already_paid_by_run", 0),
        "failed_to_create": summary.get("failed", 0),
        "this_run": summary.get("this_run", {}),
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
    max_active_runs=1,  # tidy logs; not needed for money safety: concurrent runs never pay a reference twice
    tags=["stripe", "payouts", "example"],
    params={
        "instructions_file": Param(
            None,
            type=["null", "string"],
            description="JSON Lines file of the payouts to make (default: data/payouts/<run day>.jsonl)",
        ),
        "poll_seconds": Param(
            DEFAULT_POLL_INTERVAL.total_seconds(),
            type="number",
            exclusiveMinimum=0,
            description="seconds between the sensor's polls of Stripe",
        ),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
) as dag:
    create_payouts = StripePayoutBatchOperator(
        task_id="create_payouts",
        payouts=find_instructions(),
        max_workers=4,
        stripe_conn_id=STRIPE_CONN_ID,
    )
    wait_for_payouts = StripePayoutSensor(
        task_id="wait_for_payouts",
        payout_ids=create_payouts.output,
        stripe_conn_id=STRIPE_CONN_ID,
        deferrable=True,
        poll_interval="{{ params.poll_seconds }}",
        timeout=WAIT_FOR_PAID.total_seconds(),
        # Also when some items failed: the batch still publishes its results, and the payouts it
        # created are watched to a final status. The report (all_success) then marks the run failed.
        trigger_rule="all_done",
    )
    # XComArgs: resolved to the two tasks' dicts at run time.
    report(create_payouts.output, wait_for_payouts.output)  # type: ignore[arg-type]
