"""Payout batches whose runs overlap: what the deployment tier starts several of at once.

``max_active_runs`` is left at Airflow's default (16), so the scheduler runs every triggered
run at the same time. ``deploy_concurrent_payouts`` protects its references per Stripe account
(the default); ``deploy_shared_scope_a`` and ``_b`` are two DAGs naming one ``reference_scope``.
All pay through ``stripe_faithful``: Stripe's idempotency semantics, every POST held 100 ms.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator

for dag_id, scope in (
    ("deploy_concurrent_payouts", None),
    ("deploy_shared_scope_a", "deploy-payroll"),
    ("deploy_shared_scope_b", "deploy-payroll"),
):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        params={"instructions_file": Param("", type="string")},
        tags=["deployment-tests"],
    ):
        StripePayoutBatchOperator(
            task_id="create_payouts",
            payouts="{{ params.instructions_file }}",
            stripe_conn_id="stripe_faithful",
            reference_scope=scope,
            max_workers=4,
        )
