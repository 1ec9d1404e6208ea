"""Payout instructions: one validated, normalised item of a batch (or a single payout). Without a ``reference``,
an item's is the hash of its contents: stable across tries; two identical items collide (reported: a mistake)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from airflow_provider_stripe.errors import StripeBatchInputError, StripeInputError
from airflow_provider_stripe.payouts.keys import RESERVED_METADATA_KEYS
from airflow_provider_stripe.validation import (
    METADATA_MAX_KEYS,
    validate_amount,
    validate_currency,
    validate_metadata,
    validate_object_id,
    validate_statement_descriptor,
)

T = TypeVar("T")

PAYOUT_METHODS = ("standard", "instant")
SOURCE_TYPES = ("bank_account", "card", "fpx")
DESTINATION_PREFIXES = ("ba_", "card_")
MAX_REFERENCE_LENGTH = 200
MAX_TEXT_LENGTH = 1000


@dataclass(frozen=True)
class PayoutInstruction:
    """One payout to create, validated; ``index`` is its position in the batch."""

    index: int
    reference: str
    amount: int
    currency: str
    destination: str | None = None
    method: str | None = None
    description: str | None = None
    statement_descriptor: str | None = None
    source_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def create_params(self, stamp: Mapping[str, str]) -> dict[str, Any]:
        """The ``POST /v1/payouts`` parameters, with the run's metadata ``stamp`` added."""
        return {**_content(self), "metadata": {**self.metadata, **stamp}}

    def to_json(self) -> dict[str, Any]:
        """A compact JSON form (for the validated spool file, read back with ``PayoutInstruction(**data)``)."""
        return {"index": self.index, "reference": self.reference, **_content(self)}

    def where(self) -> str:
        """``item 3, reference 'inv-1'``: how messages name the item."""
        return f"item {self.index}, reference {self.reference!r}"

    @property
    def has_explicit_reference(self) -> bool:
        """Whether the user named the item (not a content hash): protected across runs by default."""
        return self.reference != content_reference(self)


FIELDS = tuple(f.name for f in fields(PayoutInstruction) if f.name != "index")
"""The keys an instruction may have; anything else (a typo like ``ammount``) is an error."""


def _content(instruction: PayoutInstruction) -> dict[str, Any]:
    """The payout's contents without index and reference, ``None`` fields left out."""
    out: dict[str, Any] = {"amount": instruction.amount, "currency": instruction.currency}
    for name in ("destination", "method", "description", "statement_descriptor", "source_type"):
        value = getattr(instruction, name)
        if value is not None:
            out[name] = value
    if instruction.metadata:
        out["metadata"] = dict(instruction.metadata)
    return out


def content_reference(instruction: PayoutInstruction) -> str:
    """The reference of an item that has none: ``h-`` and a hash of its canonical contents."""
    canonical = json.dumps(_content(instruction), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _checked(errors: list[StripeInputError], check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``check(*args, **kwargs)``, or ``None`` with its :class:`StripeInputError` added to ``errors``."""
    try:
        return check(*args, **kwargs)
    except StripeInputError as exc:
        errors.append(exc)
        return None


def _reference(raw: Any, index: int | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise StripeInputError(
            f"{raw!r:.60} is a {type(raw).__name__}: a reference is text (or an integer), e.g. an invoice id",
            field="reference",
            index=index,
        )
    text = str(raw)
    if not text.strip() or text != text.strip() or len(text) > MAX_REFERENCE_LENGTH or not text.isprintable():
        raise StripeInputError(
            f"{text!r:.80} is not a usable reference: use 1-{MAX_REFERENCE_LENGTH} printable characters "
            "without leading or trailing spaces",
            field="reference",
            index=index,
        )
    return text


def _text(value: Any, **where: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_LENGTH):
        raise StripeInputError(
            f"{value!r:.60} is not usable: pass non-blank text of at most {MAX_TEXT_LENGTH} characters, or "
            "leave it out",
            **where,
        )
    return value


def _choice(value: Any, allowed: tuple[str, ...], **where: Any) -> str | None:
    if value is not None and value not in allowed:
        raise StripeInputError(f"{value!r:.60} is not one of {', '.join(allowed)}", **where)
    return None if value is None else str(value)


def _metadata(raw: Any, **where: Any) -> dict[str, str]:
    metadata = validate_metadata(raw, **where)
    reserved = sorted(set(metadata) & set(RESERVED_METADATA_KEYS))
    if reserved:
        raise StripeInputError(
            f"keys {', '.join(reserved)} are reserved: the provider stores the item's reference and run there "
            "to find the payout again after a retry; rename them",
            field="metadata",
            **where,
        )
    if len(metadata) + len(RESERVED_METADATA_KEYS) > METADATA_MAX_KEYS:
        raise StripeInputError(
            f"has {len(metadata)} keys; payouts can carry at most "
            f"{METADATA_MAX_KEYS - len(RESERVED_METADATA_KEYS)} (the provider adds "
            f"{len(RESERVED_METADATA_KEYS)}): drop or merge some",
            field="metadata",
            **where,
        )
    return metadata


def check_instruction(raw: Any, index: int | None) -> tuple[PayoutInstruction | None, list[StripeInputError]]:
    """Validate one raw item (``index``: its position, ``None`` for a single payout); return it or every problem."""
    if not isinstance(raw, Mapping):
        message = f"{raw!r:.60} is a {type(raw).__name__}: each payout is a dict with at least amount and currency"
        return None, [StripeInputError(message, field="item", index=index)]
    errors: list[StripeInputError] = []
    reference = _checked(errors, _reference, raw.get("reference"), index)
    where: dict[str, Any] = {"index": index, "reference": reference}
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        errors.append(
            StripeInputError(f"unknown field(s); allowed: {', '.join(FIELDS)}", field=", ".join(unknown), **where)
        )
    currency = _checked(errors, validate_currency, raw.get("currency"), **where)
    amount = _checked(errors, validate_amount, raw.get("amount"), currency, **where)
    descriptor = _checked(
        errors,
        validate_statement_descriptor,
        raw.get("statement_descriptor"),
        suffix=True,
        field="statement_descriptor",
        **where,
    )
    destination = raw.get("destination")
    if destination is not None:
        destination = _checked(
            errors, validate_object_id, destination, field="destination", prefixes=DESTINATION_PREFIXES, **where
        )
    method = _checked(errors, _choice, raw.get("method"), PAYOUT_METHODS, field="method", **where)
    description = _checked(errors, _text, raw.get("description"), field="description", **where)
    source_type = _checked(errors, _choice, raw.get("source_type"), SOURCE_TYPES, field="source_type", **where)
    metadata = _checked(errors, _metadata, raw.get("metadata"), **where) or {}
    if errors or amount is None or currency is None:
        return None, errors
    instruction = PayoutInstruction(
        index=index or 0,
        reference="",
        amount=amount,
        currency=currency,
        destination=destination,
        method=method,
        description=description,
        statement_descriptor=descriptor,
        source_type=source_type,
        metadata=metadata,
    )
    return replace(instruction, reference=reference or content_reference(instruction)), []


def instruction_from_params(**params: Any) -> PayoutInstruction:
    """Validate a single payout's operator parameters; raise listing every problem."""
    raw = {k: v for k, v in params.items() if v is not None}
    instruction, errors = check_instruction(raw, None)
    if instruction is None:
        if len(errors) == 1:
            raise errors[0]
        raise StripeBatchInputError(errors, invalid_items=1, total_items=1)
    return instruction
