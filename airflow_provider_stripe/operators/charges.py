"""Create, capture and refund Stripe charges (legacy API: vaulted cards, back-office work; not SCA)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.operators._base import StripeMoneyOperator, summarize

if TYPE_CHECKING:
    from airflow.sdk import Context

CHARGE_FIELDS: tuple[str, ...] = (
    "id",
    "amount",
    "amount_captured",
    "amount_refunded",
    "currency",
    "status",
    "paid",
    "captured",
    "refunded",
    "livemode",
    "customer",
    "payment_intent",
)

REFUND_FIELDS: tuple[str, ...] = ("id", "amount", "currency", "status", "charge", "reason")
CHARGE_ID_PREFIXES = ("ch_", "py_")
SOURCE_ID_PREFIXES = ("card_", "src_", "tok_", "pm_", "ba_")
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _charge_result(op: StripeMoneyOperator, charge: Any, idempotency_key: str) -> dict[str, Any]:
    result = summarize(charge, CHARGE_FIELDS, account_id=op.hook.account_id, idempotency_key=idempotency_key)
    if result["livemode"] is None:
        result["livemode"] = op.hook.config.livemode
    return result


def _optional_text(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    from airflow_provider_stripe.errors import StripeInputError

    raise StripeInputError(f"{value!r} is a {type(value).__name__}: pass text or None", field=field)


class StripeCreateChargeOperator(StripeMoneyOperator):
    """Charge a customer's card or a payment source through the (legacy) Charges API.

    :param amount: in minor units (``1250`` = 12.50 EUR), an ``int``, at least Stripe's minimum charge.
    :param currency: 3-letter ISO code.
    :param customer: ``cus_...``; with no ``source`` its default source is charged.
    :param source: ``card_...``, ``src_...``, ``tok_...`` or ``pm_...`` (test: ``pm_card_visa``);
        it or ``customer`` is required.
    :param capture: ``False`` only authorizes; capture with :class:`StripeCaptureChargeOperator` within 7 days.
    :param description: shown in the Dashboard and receipts.
    :param metadata: up to 50 string pairs.
    :param statement_descriptor_suffix: appended to the account's descriptor prefix.
    :param receipt_email: where Stripe sends the receipt.
    :param application_fee_amount: Connect: fee the platform keeps (minor units, at most ``amount``).
    :param on_behalf_of: Connect: the account the charge is made for (``acct_...``).
    :param transfer_data: Connect destination charge: ``{"destination": "acct_...", "amount": <int>?}``.

    Also the :class:`StripeMoneyOperator` arguments. Returns :data:`CHARGE_FIELDS`, ``account_id``, ``idempotency_key``.
    """

    template_fields: Sequence[str] = (
        *StripeMoneyOperator.template_fields,
        "amount",
        "currency",
        "customer",
        "source",
        "description",
        "metadata",
        "statement_descriptor_suffix",
        "receipt_email",
        "application_fee_amount",
        "on_behalf_of",
        "transfer_data",
    )
    template_fields_renderers = {"metadata": "json", "transfer_data": "json"}
    ui_color = "#b3abff"

    def __init__(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None = None,
        source: str | None = None,
        capture: bool = True,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        statement_descriptor_suffix: str | None = None,
        receipt_email: str | None = None,
        application_fee_amount: int | None = None,
        on_behalf_of: str | None = None,
        transfer_data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.amount = amount
        self.currency = currency
        self.customer = customer
        self.source = source
        self.capture = capture
        self.description = description
        self.metadata = metadata
        self.statement_descriptor_suffix = statement_descriptor_suffix
        self.receipt_email = receipt_email
        self.application_fee_amount = application_fee_amount
        self.on_behalf_of = on_behalf_of
        self.transfer_data = transfer_data

    def build_params(self) -> dict[str, Any]:
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.validation import (
            validate_amount,
            validate_currency,
            validate_metadata,
            validate_object_id,
            validate_statement_descriptor,
        )

        currency = validate_currency(self.currency)
        amount = validate_amount(self.amount, currency, for_charge=True)
        if not self.customer and not self.source:
            raise StripeInputError(
                "neither customer nor source is set: pass customer='cus_...' (charges its default source) "
                "and/or source='card_...'/'pm_...'/'tok_...'",
                field="source",
            )
        if not isinstance(self.capture, bool):
            raise StripeInputError(f"{self.capture!r} is not a bool: pass True or False", field="capture")
        params: dict[str, Any] = {"amount": amount, "currency": currency}
        if self.customer:
            params["customer"] = validate_object_id(self.customer, field="customer", prefixes=("cus_",))
        if self.source:
            params["source"] = validate_object_id(self.source, field="source", prefixes=SOURCE_ID_PREFIXES)
        if not self.capture:
            params["capture"] = False
        optional = {
            "description": _optional_text(self.description, "description"),
            "metadata": validate_metadata(self.metadata),
            "statement_descriptor_suffix": validate_statement_descriptor(self.statement_descriptor_suffix, suffix=True),
        }
        params.update({name: value for name, value in optional.items() if value})
        if self.receipt_email is not None:
            email = _optional_text(self.receipt_email, "receipt_email")
            if not email or not _EMAIL_RE.fullmatch(email):
                raise StripeInputError(f"{email!r} is not an email address", field="receipt_email")
            params["receipt_email"] = email
        if self.application_fee_amount is not None:
            fee = validate_amount(self.application_fee_amount, currency, field="application_fee_amount")
            if fee > amount:
                raise StripeInputError(
                    f"{fee} is more than the charge amount {amount}: the fee must not exceed the charge",
                    field="application_fee_amount",
                )
            params["application_fee_amount"] = fee
        if self.on_behalf_of:
            params["on_behalf_of"] = validate_object_id(self.on_behalf_of, field="on_behalf_of", prefixes=("acct_",))
        if self.transfer_data is not None:
            params["transfer_data"] = self._transfer_data(amount, currency)
        return params

    def _transfer_data(self, amount: int, currency: str) -> dict[str, Any]:
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.validation import validate_amount, validate_object_id

        data = self.transfer_data
        if not isinstance(data, Mapping) or set(data) - {"destination", "amount"}:
            raise StripeInputError(
                f"{data!r}: pass a dict with 'destination' ('acct_...') and optionally 'amount'",
                field="transfer_data",
            )
        destination = validate_object_id(
            data.get("destination"), field="transfer_data.destination", prefixes=("acct_",)
        )
        out: dict[str, Any] = {"destination": destination}
        if data.get("amount") is not None:
            transfer = validate_amount(data["amount"], currency, field="transfer_data.amount")
            if transfer > amount:
                raise StripeInputError(
                    f"{transfer} is more than the charge amount {amount}", field="transfer_data.amount"
                )
            out["amount"] = transfer
        return out

    def execute(self, context: Context) -> dict[str, Any]:
        params = self.build_params()
        if self.is_dry_run:
            key = self.resolve_idempotency_key(context, "charges.create")
            return self.dry_run_result("charges.create", params, idempotency_key=key)
        self.guard_live_mode("create a charge")
        requests = self.hook.requests
        charge, key = self.send_idempotent(context, "charges.create", lambda k: requests.charges_create(params, k))
        result = _charge_result(self, charge, key)
        verb = "Charged" if result["captured"] is not False else "Authorized (not captured)"
        self.log_movement(verb, result["amount"], result["currency"], result["id"], status=result["status"])
        return result


class StripeCaptureChargeOperator(StripeMoneyOperator):
    """Capture an authorized (``capture=False``) charge, fully or partly.

    :param charge_id: ``ch_...``, templated: the create task's, e.g.
        ``"{{ ti.xcom_pull(task_ids='create_charge')['id'] }}"``
        (``create_task.output["id"]`` pulls an XCom *key* ``id``, which no operator pushes).
    :param amount: capture only this much (minor units; the rest is released). Default: all.

    Also the :class:`StripeMoneyOperator` arguments.
    """

    template_fields: Sequence[str] = (*StripeMoneyOperator.template_fields, "charge_id", "amount")
    ui_color = "#b3abff"

    def __init__(self, *, charge_id: str, amount: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.charge_id = charge_id
        self.amount = amount

    def build_params(self) -> tuple[str, dict[str, Any]]:
        """Validate; return the charge id and the capture parameters."""
        from airflow_provider_stripe.validation import validate_amount, validate_object_id

        charge_id = validate_object_id(self.charge_id, field="charge_id", prefixes=CHARGE_ID_PREFIXES)
        params: dict[str, Any] = {}
        if self.amount is not None:
            params["amount"] = validate_amount(self.amount, None)
        return charge_id, params

    def execute(self, context: Context) -> dict[str, Any]:
        charge_id, params = self.build_params()
        if self.is_dry_run:
            key = self.resolve_idempotency_key(context, "charges.capture", charge_id)
            return self.dry_run_result("charges.capture", {"charge": charge_id, **params}, idempotency_key=key)
        self.guard_live_mode("capture a charge")
        requests = self.hook.requests
        charge, key = self.send_idempotent(
            context, "charges.capture", lambda k: requests.charges_capture(charge_id, params, k), key_parts=(charge_id,)
        )
        result = _charge_result(self, charge, key)
        captured = params.get("amount") or result["amount_captured"] or result["amount"]
        self.log_movement("Captured", captured, result["currency"], result["id"], status=result["status"])
        return result


class StripeRefundChargeOperator(StripeMoneyOperator):
    """Refund a charge, fully or partly (several partial refunds may follow each other).

    :param charge_id: ``ch_...``.
    :param amount: refund only this much (minor units); default: what remains.
    :param reason: ``duplicate``, ``fraudulent`` or ``requested_by_customer``.
    :param metadata: up to 50 string pairs on the refund.
    :param reverse_transfer: Connect: also reverse the transfer to the destination account.
    :param refund_application_fee: Connect: also refund the platform's application fee.

    Also the :class:`StripeMoneyOperator` arguments. Returns the refund and the charge's ``amount_refunded``.
    """

    template_fields: Sequence[str] = (*StripeMoneyOperator.template_fields, "charge_id", "amount", "reason", "metadata")
    template_fields_renderers = {"metadata": "json"}
    ui_color = "#b3abff"

    def __init__(
        self,
        *,
        charge_id: str,
        amount: int | None = None,
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        reverse_transfer: bool | None = None,
        refund_application_fee: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.charge_id = charge_id
        self.amount = amount
        self.reason = reason
        self.metadata = metadata
        self.reverse_transfer = reverse_transfer
        self.refund_application_fee = refund_application_fee

    def build_params(self) -> dict[str, Any]:
        from airflow_provider_stripe.errors import StripeInputError
        from airflow_provider_stripe.validation import validate_amount, validate_metadata, validate_object_id

        params: dict[str, Any] = {
            "charge": validate_object_id(self.charge_id, field="charge_id", prefixes=CHARGE_ID_PREFIXES)
        }
        if self.amount is not None:
            params["amount"] = validate_amount(self.amount, None)
        if self.reason is not None:
            if self.reason not in REFUND_REASONS:
                raise StripeInputError(
                    f"{self.reason!r} is not a refund reason: use one of {', '.join(sorted(REFUND_REASONS))}, "
                    "or None (put free text in metadata)",
                    field="reason",
                )
            params["reason"] = self.reason
        metadata = validate_metadata(self.metadata)
        if metadata:
            params["metadata"] = metadata
        for name in ("reverse_transfer", "refund_application_fee"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, bool):
                    raise StripeInputError(f"{value!r} is not a bool: pass True, False or None", field=name)
                params[name] = value
        return params

    def execute(self, context: Context) -> dict[str, Any]:
        params = self.build_params()
        if self.is_dry_run:
            key = self.resolve_idempotency_key(context, "refunds.create", params["charge"])
            return self.dry_run_result("refunds.create", params, idempotency_key=key)
        self.guard_live_mode("refund a charge")
        requests = self.hook.requests
        # Expanding the charge returns its new totals without a second request.
        refund_params = {**params, "expand": ["charge"]}
        refund, key = self.send_idempotent(
            context,
            "refunds.create",
            lambda k: requests.refunds_create(refund_params, k),
            key_parts=(params["charge"],),
        )
        charge = summarize(getattr(refund, "charge", None) or {}, ("refunded", "amount_refunded", "livemode"))
        result = summarize(
            refund,
            REFUND_FIELDS,
            refunded=charge["refunded"],
            amount_refunded=charge["amount_refunded"],
            livemode=charge["livemode"] if charge["livemode"] is not None else self.hook.config.livemode,
            account_id=self.hook.account_id,
            idempotency_key=key,
        )
        self.log_movement(
            "Refunded",
            result["amount"],
            result["currency"],
            result["id"],
            charge=result["charge"],
            status=result["status"],
        )
        return result
