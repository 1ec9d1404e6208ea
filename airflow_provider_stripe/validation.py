"""Check what a task is about to send, with Stripe's own rules, before any request leaves the worker."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from airflow_provider_stripe.errors import StripeConfigurationError, StripeInputError

ACCOUNT_ID_RE = re.compile(r"acct_[A-Za-z0-9]{1,250}")
"""A Stripe (connected) account id, ``acct_`` and letters and digits (Stripe's ids are at most 255 characters)."""

CONN_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,250}")
"""A plain Airflow connection id, safe to put in a log line or answer (webhook URLs, the Test button)."""

ISO_4217_CURRENCIES: frozenset[str] = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob bov brl bsd btn bwp byn
    bzd cad cdf che chf chw clf clp cny cop cou crc cuc cup cve czk djf dkk dop dzd egp ern etb eur fjd
    fkp gbp gel ghs gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs khr
    kmf kpw krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn mxv
    myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sdg
    sek sgd shp sle sll sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd tzs uah ugx usd usn
    uyi uyu uyw uzs ved ves vnd vuv wst xaf xcd xcg xof xpf yer zar zmw zwg zwl
    """.split()  # noqa: SIM905 - the standard's table, readable as a table
)
"""ISO 4217 codes, lower-case, plus withdrawn ones Stripe still settles, less those no one is paid in
(metals, bond units, ``xdr``, ``xts``, ``xxx``...); pycountry (8 MB) is not worth it for 180 codes."""

ZERO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
"""Currencies whose amounts Stripe takes in the main unit (``500`` jpy is ¥500)."""

THREE_DECIMAL_CURRENCIES: frozenset[str] = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
"""Currencies with three decimals; Stripe requires their amounts to end in 0."""

_MIN_CHARGES = """
    usd:50 aed:200 aud:50 bgn:100 brl:50 cad:50 chf:50 czk:1500 dkk:250 eur:50 gbp:30 hkd:400 huf:17500
    inr:50 jpy:50 mxn:1000 myr:200 nok:300 nzd:50 pln:200 ron:200 sek:300 sgd:50 thb:1000
"""
MIN_CHARGE_AMOUNTS: Mapping[str, int] = MappingProxyType(
    {code: int(amount) for code, _, amount in (entry.partition(":") for entry in _MIN_CHARGES.split())}
)
"""Stripe's minimum charge amount per currency, in the amount's units; others ("0.50 USD equivalent")
need an exchange rate, so Stripe checks them."""

MAX_AMOUNT_DIGITS = 8
MAX_AMOUNT = 10**MAX_AMOUNT_DIGITS - 1

STATEMENT_DESCRIPTOR_MIN = 5
STATEMENT_DESCRIPTOR_MAX = 22
STATEMENT_DESCRIPTOR_FORBIDDEN = frozenset("<>\\'\"*")

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500

_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")


def _describe(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_account_id(value: Any, *, field: str = "account_id", conn_id: str | None = None) -> str:
    """Return ``value`` if a Stripe account id, before it goes in a path or ``Stripe-Account``, else raise
    naming ``field``: :class:`StripeConfigurationError` with ``conn_id``, else :class:`StripeInputError`."""
    if isinstance(value, str) and ACCOUNT_ID_RE.fullmatch(value):
        return value
    message = f"{_describe(value)} is not a Stripe account id: pass acct_ followed by letters and digits"
    if conn_id is not None:
        raise StripeConfigurationError(message, field=field, conn_id=conn_id)
    raise StripeInputError(message, field=field)


def validate_currency(
    currency: Any, *, field: str = "currency", index: int | None = None, reference: str | None = None
) -> str:
    """Return the currency as a lowercase ISO 4217 code, else raise :class:`StripeInputError`."""
    where: dict[str, Any] = {"field": field, "index": index, "reference": reference}
    if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
        raise StripeInputError(
            f"{_describe(currency)} is not a currency: pass a 3-letter ISO 4217 code such as 'eur' or 'usd'", **where
        )
    code = currency.lower()
    if code not in ISO_4217_CURRENCIES:
        raise StripeInputError(
            f"{_describe(currency)} is not an ISO 4217 currency code: check the spelling (e.g. 'eur', 'usd', 'gbp')",
            **where,
        )
    return code


def format_amount(amount: int, currency: str) -> str:
    """Human form of a Stripe amount for logs: ``1234, 'eur'`` -> ``12.34 EUR``; ``500 JPY``."""
    code = currency.lower()
    exponent = 0 if code in ZERO_DECIMAL_CURRENCIES else 3 if code in THREE_DECIMAL_CURRENCIES else 2
    value = Decimal(int(amount)).scaleb(-exponent)
    return f"{value:.{exponent}f} {currency.upper()}"


def format_totals(totals: Mapping[str, int]) -> str:
    """Totals per currency for people, sorted by currency: ``12.50 EUR, 3.00 USD``; ``nothing`` when empty."""
    return ", ".join(format_amount(v, c) for c, v in sorted(totals.items())) or "nothing"


def validate_amount(
    amount: Any,
    currency: Any,
    *,
    field: str = "amount",
    for_charge: bool = False,
    index: int | None = None,
    reference: str | None = None,
) -> int:
    """Return ``amount`` if a valid Stripe amount in ``currency`` (minor units, at most 8 digits), else raise.
    Only a positive ``int``: never rounded, a rounded amount is a wrong payment. ``currency=None``
    (not known yet) skips currency rules; ``for_charge`` checks the minimum charge amount."""
    where: dict[str, Any] = {"field": field, "index": index, "reference": reference}
    code = None if currency is None else validate_currency(currency, index=index, reference=reference)
    example = f"e.g. 1250 for {format_amount(1250, code)}" if code else "e.g. 1250 for 12.50 EUR"
    if isinstance(amount, bool) or not isinstance(amount, int):
        kind = type(amount).__name__
        hint = (
            " (a templated value renders as a string: pass an int, an XComArg, or set "
            "render_template_as_native_obj=True on the task or DAG)"
            if isinstance(amount, str)
            else ""
        )
        raise StripeInputError(
            f"{_describe(amount)} is a {kind}, not an integer: pass the amount as an int in the currency's minor "
            f"unit, {example}; amounts are never rounded{hint}",
            **where,
        )
    if amount <= 0:
        raise StripeInputError(f"{amount} is not positive: pass an amount greater than 0 in minor units", **where)
    if amount > MAX_AMOUNT:
        raise StripeInputError(
            f"{amount} has more than {MAX_AMOUNT_DIGITS} digits (Stripe's maximum is {MAX_AMOUNT}); "
            "check the unit (minor units, not micro-units) or split the amount",
            **where,
        )
    if code is None:
        return amount
    if code in THREE_DECIMAL_CURRENCIES and amount % 10:
        raise StripeInputError(
            f"{amount} {code.upper()}: Stripe requires three-decimal currency amounts to end in 0 "
            f"(round to {amount - amount % 10} or {amount - amount % 10 + 10})",
            **where,
        )
    minimum = MIN_CHARGE_AMOUNTS.get(code)
    if for_charge and minimum is not None and amount < minimum:
        raise StripeInputError(
            f"{format_amount(amount, code)} is below Stripe's minimum charge of {format_amount(minimum, code)} "
            f"(amount {minimum}); charge at least that much",
            **where,
        )
    return amount


def _is_latin(char: str) -> bool:
    """Printable ASCII, or a letter from a Latin script (é, ß, ø...): what Stripe accepts on statements."""
    return " " <= char <= "~" or (char.isalpha() and unicodedata.name(char, "").startswith("LATIN "))


def validate_statement_descriptor(
    value: Any,
    *,
    suffix: bool = False,
    field: str | None = None,
    index: int | None = None,
    reference: str | None = None,
) -> str | None:
    """Return the descriptor if Stripe would accept it (``None`` passes), else raise; ``suffix=True``
    (suffixes, payout descriptors) has no 5-character minimum."""
    name = field or ("statement_descriptor_suffix" if suffix else "statement_descriptor")
    where: dict[str, Any] = {"field": name, "index": index, "reference": reference}
    if value is None:
        return None
    if not isinstance(value, str):
        raise StripeInputError(f"{_describe(value)} is not a string: pass text or None", **where)
    if not value.strip():
        raise StripeInputError("is blank: pass text or leave it unset (None)", **where)
    if len(value) > STATEMENT_DESCRIPTOR_MAX:
        raise StripeInputError(
            f"{value!r} has {len(value)} characters; Stripe allows at most {STATEMENT_DESCRIPTOR_MAX}: shorten it",
            **where,
        )
    forbidden = sorted({c for c in value if c in STATEMENT_DESCRIPTOR_FORBIDDEN})
    if forbidden:
        raise StripeInputError(
            f"{value!r} contains {' '.join(forbidden)}; Stripe forbids < > \\ ' \" * on statements: remove them",
            **where,
        )
    non_latin = [c for c in value if not _is_latin(c)]
    if non_latin:
        raise StripeInputError(
            f"{value!r} contains non-Latin characters ({''.join(dict.fromkeys(non_latin))}); statements accept "
            "Latin letters, digits, spaces and basic punctuation only",
            **where,
        )
    if not suffix:
        if len(value) < STATEMENT_DESCRIPTOR_MIN:
            raise StripeInputError(
                f"{value!r} has {len(value)} characters; a full statement descriptor needs at least "
                f"{STATEMENT_DESCRIPTOR_MIN}: lengthen it",
                **where,
            )
        if not any(c.isalpha() for c in value):
            raise StripeInputError(f"{value!r} has no letter; a statement descriptor needs at least one", **where)
    return value


def validate_metadata(
    metadata: Any, *, field: str = "metadata", index: int | None = None, reference: str | None = None
) -> dict[str, str]:
    """Return metadata as Stripe stores it (``dict[str, str]``), or raise naming the bad key: numbers become
    ``str``; ``None``, bools and nested values are refused (Stripe would unset or mangle them)."""
    where: dict[str, Any] = {"field": field, "index": index, "reference": reference}
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise StripeInputError(
            f"{_describe(metadata)} is a {type(metadata).__name__}, not a mapping: pass a dict of str -> str", **where
        )
    if len(metadata) > METADATA_MAX_KEYS:
        raise StripeInputError(
            f"has {len(metadata)} keys; Stripe allows at most {METADATA_MAX_KEYS}: drop or merge some", **where
        )
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise StripeInputError(f"key {_describe(key)} is not a non-empty string: use text keys", **where)
        if len(key) > METADATA_KEY_MAX:
            raise StripeInputError(
                f"key {key!r} has {len(key)} characters; Stripe allows at most {METADATA_KEY_MAX}: shorten it", **where
            )
        if "[" in key or "]" in key:
            raise StripeInputError(f"key {key!r} contains square brackets, which Stripe refuses: rename it", **where)
        if value is None or isinstance(value, bool):
            raise StripeInputError(
                f"value of key {key!r} is {value!r}: pass text (e.g. 'true'/'false'), or leave the key out", **where
            )
        if not isinstance(value, (str, int, float, Decimal)):
            raise StripeInputError(
                f"value of key {key!r} is a {type(value).__name__}; metadata values must be flat text: "
                "serialise it (e.g. json.dumps) or split it over several keys",
                **where,
            )
        text = str(value)
        if len(text) > METADATA_VALUE_MAX:
            raise StripeInputError(
                f"value of key {key!r} has {len(text)} characters; Stripe allows at most {METADATA_VALUE_MAX}", **where
            )
        out[key] = text
    return out


_OBJECT_ID_RE = re.compile(r"[A-Za-z0-9_]+")


def validate_object_id(
    value: Any, *, field: str, prefixes: Sequence[str], index: int | None = None, reference: str | None = None
) -> str:
    """Return ``value`` if it looks like a Stripe id with one of ``prefixes``, catching mix-ups before a request."""
    if not isinstance(value, str) or not value.startswith(tuple(prefixes)) or not _OBJECT_ID_RE.fullmatch(value):
        expected = " or ".join(f"{p}..." for p in prefixes)
        message = f"{_describe(value)} is not a Stripe id of the expected kind: pass an id starting with {expected}"
        raise StripeInputError(message, field=field, index=index, reference=reference)
    return value
