"""Authorize card charges, capture them, then refund part of each -- chained through XCom.

1. ``authorize`` -- :class:`~airflow_provider_stripe.operators.charges.StripeCreateChargeOperator`
   mapped over the orders (``expand_kwargs``): one charge per order with ``capture=False``,
   so the card is only authorized. Each mapped instance gets its own idempotency key
   (dag_id, logical date or run id, task_id, map_index), so a retry never charges twice; a
   declined card fails the instance without retries, and clearing it after the cause is
   fixed sends under a fresh key.
2. ``capture`` -- :class:`~airflow_provider_stripe.operators.charges.StripeCaptureChargeOperator`
   captures each authorized charge in full; the charge ids come from ``authorize``'s XCom.
3. ``refund_part`` -- :class:`~airflow_provider_stripe.operators.charges.StripeRefundChargeOperator`
   refunds ``refund_amount`` (minor units) of each captured charge.

Stripe calls the Charges API legacy for new payments: build a new checkout on
PaymentIntents. This flow suits merchant-initiated charges of cards already on file and
back-office capture/refund work.

Runs against whatever the ``stripe_default`` connection points to; the live-mode guard
refuses live keys unless the connection allows live mode. The ``source`` param defaults to
``pm_card_visa`` (what localstripe understands); against Stripe's test mode use
``tok_visa``. The DAG renders templates as native objects, so ``refund_amount`` reaches the
operator as an int (amounts are never parsed from strings).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param

from airflow_provider_stripe.operators.charges import (
    StripeCaptureChargeOperator,
    StripeCreateChargeOperator,
    StripeRefundChargeOperator,
)

STRIPE_CONN_ID = "stripe_default"
ORDERS: list[dict[str, Any]] = [
    {"amount": 2000, "metadata": {"order_id": "A-1001"}, "description": "Order A-1001"},
    {"amount": 3500, "metadata": {"order_id": "A-1002"}, "description": "Order A-1002"},
]


def charge_id(result: dict[str, Any]) -> str:
    """The charge id in an operator's result (``XComArg.map`` feeds it to the next step)."""
    return str(result["id"])


with DAG(
    dag_id="stripe_charge_capture_refund",
    description="Authorize, capture and partly refund Stripe charges, chained through XCom",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    render_template_as_native_obj=True,
    tags=["stripe", "charges", "example"],
    params={
        "source": Param(
            "pm_card_visa", type="string", description="card/payment method to charge (tok_visa on Stripe)"
        ),
        "currency": Param("eur", type="string", minLength=3, maxLength=3),
        "refund_amount": Param(500, type="integer", minimum=1, description="refunded per charge, minor units"),
    },
) as dag:
    authorize = StripeCreateChargeOperator.partial(
        task_id="authorize",
        stripe_conn_id=STRIPE_CONN_ID,
        currency="{{ params.currency }}",
        source="{{ params.source }}",
        capture=False,
    ).expand_kwargs(ORDERS)

    capture = StripeCaptureChargeOperator.partial(task_id="capture", stripe_conn_id=STRIPE_CONN_ID).expand(
        charge_id=authorize.output.map(charge_id)
    )

    refund = StripeRefundChargeOperator.partial(
        task_id="refund_part",
        stripe_conn_id=STRIPE_CONN_ID,
        amount="{{ params.refund_amount }}",
        metadata={"note": "goodwill partial refund"},
    ).expand(charge_id=capture.output.map(charge_id))
