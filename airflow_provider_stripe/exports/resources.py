"""The Stripe resources the exports know, declared once as data: listing service, object type,
change events and a stable CSV/Parquet schema (for the contract's API version)."""

from __future__ import annotations

from typing import NamedTuple

from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.exports.formats import Columns, ColumnType

_COMMON: tuple[tuple[str, ColumnType], ...] = (
    ("id", "string"),
    ("object", "string"),
    ("created", "timestamp"),
    ("livemode", "boolean"),
)


def _columns(specs: str) -> Columns:
    """Common columns, then the space-separated ``name:type`` specs (type defaults to string)."""
    parsed = [(name, kind or "string") for name, _, kind in (spec.partition(":") for spec in specs.split())]
    return (*_COMMON, *parsed)  # type: ignore[arg-type]


class StripeResource(NamedTuple):
    """One listable Stripe resource: its ``client.v1`` service (``name``), item ``object``, the
    ``/v1/events`` ``event_type`` filter carrying its changes (``None``: none) and its ``columns``."""

    name: str
    object: str
    event_type: str | None
    columns: Columns


RESOURCES: dict[str, StripeResource] = {
    r.name: r
    for r in (
        StripeResource(
            "charges",
            "charge",
            "charge.*",
            _columns(
                "amount:int64 amount_captured:int64 amount_refunded:int64 currency status paid:boolean "
                "captured:boolean refunded:boolean disputed:boolean customer payment_intent balance_transaction "
                "failure_code failure_message description metadata:json"
            ),
        ),
        StripeResource(
            "payment_intents",
            "payment_intent",
            "payment_intent.*",
            _columns(
                "amount:int64 amount_received:int64 currency status customer payment_method latest_charge "
                "canceled_at:timestamp cancellation_reason description metadata:json"
            ),
        ),
        # refund.* and charge.refund.updated: read every event, keep refunds
        StripeResource(
            "refunds",
            "refund",
            None,
            _columns("amount:int64 currency status reason charge payment_intent balance_transaction metadata:json"),
        ),
        StripeResource(
            "disputes",
            "dispute",
            "charge.dispute.*",
            _columns(
                "amount:int64 currency status reason charge payment_intent is_charge_refundable:boolean "
                "balance_transactions:json metadata:json"
            ),
        ),
        StripeResource(
            "payouts",
            "payout",
            "payout.*",
            _columns(
                "amount:int64 currency arrival_date:timestamp automatic:boolean status method type destination "
                "balance_transaction failure_code failure_message description statement_descriptor metadata:json"
            ),
        ),
        StripeResource(
            "balance_transactions",
            "balance_transaction",
            None,
            _columns(
                "amount:int64 fee:int64 net:int64 currency type reporting_category status available_on:timestamp "
                "source description exchange_rate:float64 fee_details:json"
            ),
        ),
        StripeResource(
            "customers",
            "customer",
            "customer.*",
            _columns(
                "email name phone description currency balance:int64 delinquent:boolean address:json metadata:json"
            ),
        ),
        StripeResource(
            "invoices",
            "invoice",
            "invoice.*",
            _columns(
                "customer status currency amount_due:int64 amount_paid:int64 amount_remaining:int64 subtotal:int64 "
                "total:int64 number subscription due_date:timestamp period_start:timestamp period_end:timestamp "
                "hosted_invoice_url metadata:json"
            ),
        ),
        StripeResource(
            "transfers",
            "transfer",
            "transfer.*",
            _columns(
                "amount:int64 amount_reversed:int64 currency destination destination_payment source_transaction "
                "transfer_group reversed:boolean balance_transaction description metadata:json"
            ),
        ),
        StripeResource(
            "application_fees",
            "application_fee",
            "application_fee.*",
            _columns(
                "amount:int64 amount_refunded:int64 currency account application charge originating_transaction "
                "refunded:boolean balance_transaction"
            ),
        ),
        StripeResource(
            "events", "event", None, _columns("type api_version account pending_webhooks:int64 request:json data:json")
        ),
    )
}


def get_resource(name: object) -> StripeResource:
    """The registered resource ``name``; an unknown one fails listing the known ones."""
    resource = RESOURCES.get(name) if isinstance(name, str) else None
    if resource is None:
        raise StripeInputError(
            f"{name!r} is not an exportable Stripe resource: pass one of {', '.join(RESOURCES)}", field="resource"
        )
    return resource
