"""A payout batch that moves money only after a person approves it, within per-run limits.

1. ``summarize`` -- :func:`~airflow_provider_stripe.payouts.summary.summarize_batch` reads and
   validates the run's instructions file as the batch will, checks the batch's limits (at most
   ``MAX_ITEMS`` items and ``MAX_TOTAL`` per currency: above them the run fails here, nobody is
   asked) and returns the summary: count, total per currency, the largest items, a digest.
2. ``approve`` -- Airflow's human-in-the-loop ``ApprovalOperator`` (Airflow 3.1+): the summary is
   the request's body, under *Required actions* in the UI (or the REST API's ``hitlDetails``).
   *Approve* lets the batch run; *Reject* skips it (the run succeeds, nothing is paid); no answer
   within ``APPROVAL_TIMEOUT`` fails the run, nothing paid.
3. ``create_payouts`` -- :class:`~airflow_provider_stripe.operators.payouts.StripePayoutBatchOperator`
   with the same limits and ``approved_digest``: it pays only the approved instructions (a file
   changed after the summary is refused before any request) and never pays a reference twice.

Watch the payouts to a final status as ``stripe_payout_batch`` does (a ``StripePayoutSensor`` on
``create_payouts.output``). On an Airflow without the human-in-the-loop operators the DAG fails to
import with a message saying what to install.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.compat import approval_operator
from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator

ApprovalOperator = approval_operator()

STRIPE_CONN_ID = "stripe_default"
SAMPLE = Path(__file__).resolve().parent / "data" / "payouts" / "sample.jsonl"
MAX_ITEMS = 500
MAX_TOTAL = {"eur": 5_000_000}  # minor units: 50,000.00 EUR; any other currency is refused
APPROVAL_TIMEOUT = timedelta(hours=12)


@task
def summarize(**context: Any) -> dict[str, Any]:
    """The batch as the approver sees it (fails on invalid instructions or a batch above its limits)."""
    from airflow_provider_stripe.payouts.limits import BatchLimits
    from airflow_provider_stripe.payouts.summary import summarize_batch

    limits = BatchLimits.from_arguments(MAX_ITEMS, MAX_TOTAL)
    return summarize_batch(context["params"]["instructions_file"], context, limits=limits)


with DAG(
    dag_id="stripe_payout_batch_approval",
    description="Pay out an instructions file through Stripe once a person approves its summary",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["stripe", "payouts", "approval", "example"],
    params={
        "instructions_file": Param(
            str(SAMPLE), type="string", description="JSON Lines file of the payouts to make (local path or URL)"
        ),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
) as dag:
    summary = summarize()
    approve = ApprovalOperator(
        task_id="approve",
        subject="Approve payout batch: {{ ti.xcom_pull(task_ids='summarize')['count'] }} payout(s), "
        "{{ ti.xcom_pull(task_ids='summarize')['totals_text'] }}",
        body="{{ ti.xcom_pull(task_ids='summarize')['text'] }}",
        response_timeout=APPROVAL_TIMEOUT,
        retries=0,  # an answer (or its absence) is final: a retry would ask again
    )
    create_payouts = StripePayoutBatchOperator(
        task_id="create_payouts",
        payouts="{{ params.instructions_file }}",
        max_items=MAX_ITEMS,
        max_total=MAX_TOTAL,
        approved_digest="{{ ti.xcom_pull(task_ids='summarize')['digest'] }}",
        stripe_conn_id=STRIPE_CONN_ID,
    )
    summary >> approve >> create_payouts
