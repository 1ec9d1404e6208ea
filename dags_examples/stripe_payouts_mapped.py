"""Mapped payouts: one batch per regional file, and one-off payouts, each paid exactly once.

* ``pay_regions`` -- :class:`~airflow_provider_stripe.operators.payouts.StripePayoutBatchOperator`
  mapped with ``.partial().expand()`` over the day's regional JSON Lines files
  (``data/payouts/<run day>-<region>.jsonl`` next to this file, the run day being ``ds`` or,
  for a manual run without a logical date, the day it was triggered; or the run's
  ``region_files`` param). No file for the day: nothing is mapped, nothing is paid. Each
  mapped task has its own idempotency keys, metadata tag and progress, so a region that fails
  is retried alone and never repays the others.
* ``pay_bonuses`` -- :class:`~airflow_provider_stripe.operators.payouts.StripeCreatePayoutOperator`
  mapped with ``.expand_kwargs()`` over the run's ``bonuses`` param (``[{"reference":
  "bonus-p42-2026-01", "amount": 5000, "description": "..."}]``): one payout each, EUR.

Every item has a ``reference`` (your stable id for it): a retry -- after a crash, a lost
answer or a refusal fixed in the meantime -- finds the payout it already made instead of
paying again, and a refused item is retried under a fresh idempotency key. The
``stripe_default`` connection needs a key with write access to payouts; a live key is
refused unless the connection allows live mode.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.exports.windows import run_day
from airflow_provider_stripe.operators.payouts import StripeCreatePayoutOperator, StripePayoutBatchOperator

STRIPE_CONN_ID = "stripe_default"
INSTRUCTIONS_DIR = Path(__file__).resolve().parent / "data" / "payouts"


@task
def region_files(**context: Any) -> list[str]:
    """The regional files to pay: the ``region_files`` param, else ``<run day>-*.jsonl`` files."""
    given = context["params"]["region_files"]
    if given:
        return [str(p) for p in given]
    return sorted(str(p) for p in INSTRUCTIONS_DIR.glob(f"{run_day(context)}-*.jsonl"))


@task
def bonuses(**context: Any) -> list[dict[str, Any]]:
    """One kwargs dict per bonus payout (``reference``, ``amount``, optional ``description``)."""
    return [dict(b) for b in context["params"]["bonuses"]]


with DAG(
    dag_id="stripe_payouts_mapped",
    description="Per-region payout batches and one-off payouts, mapped, each paid exactly once",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["stripe", "payouts", "example"],
    params={
        "region_files": Param([], type="array", description="JSON Lines files, one mapped batch each"),
        "bonuses": Param([], type="array", description="One-off EUR payouts: reference, amount, description"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
) as dag:
    StripePayoutBatchOperator.partial(
        task_id="pay_regions", stripe_conn_id=STRIPE_CONN_ID, max_workers=2, on_failure="continue"
    ).expand(payouts=region_files())

    StripeCreatePayoutOperator.partial(
        task_id="pay_bonuses", stripe_conn_id=STRIPE_CONN_ID, currency="eur"
    ).expand_kwargs(bonuses())
