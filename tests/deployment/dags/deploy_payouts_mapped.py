"""The baseline of the batch-vs-mapped benchmark: one mapped task per payout, same instructions file,
same connection (``stripe_proxied``) as ``deploy_payout_batch``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_stripe.operators.payouts import StripeCreatePayoutOperator


@task
def read_instructions(**context: Any) -> list[dict[str, Any]]:
    """One kwargs dict per line of the run's ``instructions_file``."""
    with open(context["params"]["instructions_file"], encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


with DAG(
    dag_id="deploy_payouts_mapped",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"instructions_file": Param("", type="string")},
    tags=["deployment-tests"],
):
    StripeCreatePayoutOperator.partial(task_id="pay", stripe_conn_id="stripe_proxied").expand_kwargs(
        read_instructions()
    )
