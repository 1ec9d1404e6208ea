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
    """One listable Stripe resource: its ``client.v1`` service (``name``), item ``object`` (the name
    singular), the ``/v1/events`` ``event_type`` filter carrying its changes (``None``: none) and its ``columns``."""

    name: str
    object: str
    event_type: str | None
    columns: Columns


RESOURCES: dict[str, StripeResource] = {
    name: StripeResource(name, name.removesuffix("s"), event_type, _columns(specs))
    for name, event_type, specs in (
        (
            "charges",
            "charge.*",
            "amount:int64 amount_captured:int64 amount_refunded:int64 currency status paid:boolean "
            "captured:boolean refunded:boolean disputed:boolean customer payment_intent balance_transaction "
            "failure_code failure_message description metadata:json",
        ),
        (
            "payment_intents",
            "payment_intent.*",
            "amount:int64 amount_received:int64 currency status customer payment_method latest_charge "
            "canceled_at:timestamp cancellation_reason description metadata:json",
        ),
        # refund.* and charge.refund.updated: read every event, keep refunds
        (
            "refunds",
            None,
            "amount:int64 currency status reason charge payment_intent balance_transaction metadata:json",
        ),
        (
            "disputes",
            "charge.dispute.*",
            "amount:int64 currency status reason charge payment_intent is_charge_refundable:boolean "
            "balance_transactions:json metadata:json",
        ),
        (
            "payouts",
            "payout.*",
            "amount:int64 currency arrival_date:timestamp automatic:boolean status method type destination "
            "balance_transaction failure_code failure_message description statement_descriptor metadata:json",
        ),
        (
            "balance_transactions",
            None,
            "amount:int64 fee:int64 net:int64 currency type reporting_category status available_on:timestamp "
            "source description exchange_rate:float64 fee_details:json",
        ),
        (
            "customers",
            "customer.*",
            "email name phone description currency balance:int64 delinquent:boolean address:json metadata:json",
        ),
        (
            "invoices",
            "invoice.*",
            "customer status currency amount_due:int64 amount_paid:int64 amount_remaining:int64 subtotal:int64 "
            "total:int64 number subscription due_date:timestamp period_start:timestamp period_end:timestamp "
            "hosted_invoice_url metadata:json",
        ),
        (
            "transfers",
            "transfer.*",
            "amount:int64 amount_reversed:int64 currency destination destination_payment source_transaction "
            "transfer_group reversed:boolean balance_transaction description metadata:json",
        ),
        (
            "application_fees",
            "application_fee.*",
            "amount:int64 amount_refunded:int64 currency account application charge originating_transaction "
            "refunded:boolean balance_transaction",
        ),
        ("events", None, "type api_version account pending_webhooks:int64 request:json data:json"),
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
