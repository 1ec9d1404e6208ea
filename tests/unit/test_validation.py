"""Every input rule of :mod:`airflow_provider_stripe.validation`, table-driven.

Each bad value must be refused with a :class:`StripeInputError` that names the field (and,
in a batch, the item's index and reference); each good value must come back normalised.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.validation import (
    ISO_4217_CURRENCIES,
    MIN_CHARGE_AMOUNTS,
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    format_amount,
    validate_amount,
    validate_currency,
    validate_metadata,
    validate_object_id,
    validate_statement_descriptor,
)

# -- amounts ---------------------------------------------------------------------------

BAD_AMOUNTS: list[tuple[Any, Any, dict[str, Any], str]] = [
    (12.5, "eur", {}, "float"),
    (1250.0, "eur", {}, "float"),  # integral float: still refused, never coerced
    ("1250", "eur", {}, "render_template_as_native_obj"),
    (True, "eur", {}, "bool"),
    (False, "eur", {}, "bool"),
    (Decimal("12.50"), "eur", {}, "Decimal"),
    (None, "eur", {}, "NoneType"),
    (0, "eur", {}, "not positive"),
    (-100, "eur", {}, "not positive"),
    (100_000_000, "eur", {}, "more than 8 digits"),
    (1231, "kwd", {}, "end in 0"),
    (49, "usd", {"for_charge": True}, "minimum charge"),
    (49, "eur", {"for_charge": True}, "minimum charge"),
    (29, "gbp", {"for_charge": True}, "0.30 GBP"),
    (49, "jpy", {"for_charge": True}, "50 JPY"),
    (1000, "eu", {}, "not a currency"),
]


@pytest.mark.parametrize(("amount", "currency", "kwargs", "needle"), BAD_AMOUNTS)
def test_bad_amounts_are_refused(amount: Any, currency: Any, kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(StripeInputError) as info:
        validate_amount(amount, currency, **kwargs)
    assert needle in str(info.value)
    assert info.value.field in ("amount", "currency")


GOOD_AMOUNTS: list[tuple[Any, Any, dict[str, Any]]] = [
    (1, "eur", {}),  # a refund or payout may be tiny
    (50, "eur", {"for_charge": True}),
    (30, "gbp", {"for_charge": True}),
    (50, "jpy", {"for_charge": True}),
    (99_999_999, "usd", {}),
    (1230, "kwd", {}),
    (1, "isk", {"for_charge": True}),  # no client-side minimum for currencies outside the table
    (10, None, {}),  # currency unknown (partial refund): currency rules skipped
]


@pytest.mark.parametrize(("amount", "currency", "kwargs"), GOOD_AMOUNTS)
def test_good_amounts_pass_unchanged(amount: Any, currency: Any, kwargs: dict[str, Any]) -> None:
    assert validate_amount(amount, currency, **kwargs) == amount


def test_minimum_table_covers_the_documented_currencies() -> None:
    assert {k: MIN_CHARGE_AMOUNTS[k] for k in ("usd", "eur", "gbp", "jpy")} == {
        "usd": 50,
        "eur": 50,
        "gbp": 30,
        "jpy": 50,
    }
    with pytest.raises(TypeError):
        MIN_CHARGE_AMOUNTS["usd"] = 1  # type: ignore[index]


def test_batch_errors_name_index_and_reference() -> None:
    with pytest.raises(StripeInputError) as info:
        validate_amount(12.5, "eur", field="amount", index=7, reference="inv-2024-07")
    err = info.value
    assert (err.field, err.index, err.reference) == ("amount", 7, "inv-2024-07")
    assert str(err).startswith("item 7, reference 'inv-2024-07', field 'amount': ")
    assert isinstance(err, ValueError)


# -- currencies ------------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["", "eu", "euro", "e1r", " eur", 978, None, "€"])
def test_bad_currencies_are_refused(currency: Any) -> None:
    with pytest.raises(StripeInputError, match="3-letter ISO 4217") as info:
        validate_currency(currency, index=2)
    assert info.value.field == "currency"
    assert info.value.index == 2


@pytest.mark.parametrize(("currency", "expected"), [("EUR", "eur"), ("usd", "usd"), ("JpY", "jpy")])
def test_currencies_are_lowercased(currency: str, expected: str) -> None:
    assert validate_currency(currency) == expected


def test_currency_families() -> None:
    assert len(ZERO_DECIMAL_CURRENCIES) == 16 and "jpy" in ZERO_DECIMAL_CURRENCIES
    assert frozenset({"bhd", "jod", "kwd", "omr", "tnd"}) == THREE_DECIMAL_CURRENCIES
    assert not ZERO_DECIMAL_CURRENCIES & THREE_DECIMAL_CURRENCIES


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(1234, "eur", "12.34 EUR"), (500, "jpy", "500 JPY"), (5, "usd", "0.05 USD"), (1230, "kwd", "1.230 KWD")],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


# -- statement descriptors ---------------------------------------------------------------

BAD_DESCRIPTORS: list[tuple[Any, bool, str]] = [
    ("ACME", False, "at least 5"),
    ("12345", False, "no letter"),
    ("A" * 23, False, "at most 22"),
    ("A" * 23, True, "at most 22"),
    ("ACME <shop>", False, "<"),
    ("ACME*SHOP", True, "*"),
    ("O'Brien Ltd", False, "'"),
    ('ACME "shop"', True, '"'),
    ("ACME\\SHOP", False, "\\"),
    ("ACME 商店 SHOP", False, "non-Latin"),
    ("ACME ✓", True, "non-Latin"),
    ("   ", True, "blank"),
    (12345, False, "not a string"),
]


@pytest.mark.parametrize(("value", "suffix", "needle"), BAD_DESCRIPTORS)
def test_bad_statement_descriptors_are_refused(value: Any, suffix: bool, needle: str) -> None:
    with pytest.raises(StripeInputError) as info:
        validate_statement_descriptor(value, suffix=suffix)
    assert needle in str(info.value)
    assert info.value.field == ("statement_descriptor_suffix" if suffix else "statement_descriptor")


@pytest.mark.parametrize(
    ("value", "suffix"),
    [("ACME SHOP", False), ("Café Zürich", False), ("A" * 22, False), ("X1", True), ("ORDER 42", True), (None, False)],
)
def test_good_statement_descriptors_pass(value: Any, suffix: bool) -> None:
    assert validate_statement_descriptor(value, suffix=suffix) == value


def test_payout_descriptor_uses_suffix_rules_with_its_own_field_name() -> None:
    assert validate_statement_descriptor("PAY", suffix=True, field="statement_descriptor") == "PAY"
    with pytest.raises(StripeInputError) as info:
        validate_statement_descriptor("P" * 23, suffix=True, field="statement_descriptor", index=0, reference="r")
    assert info.value.field == "statement_descriptor"


# -- metadata ---------------------------------------------------------------------------

BAD_METADATA: list[tuple[Any, str]] = [
    ({f"k{i}": "v" for i in range(51)}, "at most 50"),
    ({"k" * 41: "v"}, "at most 40"),
    ({"items[0]": "v"}, "square brackets"),
    ({"k": "v" * 501}, "at most 500"),
    ({"k": None}, "None"),
    ({"k": True}, "True"),
    ({"k": {"nested": 1}}, "dict"),
    ({"k": [1, 2]}, "list"),
    ({1: "v"}, "non-empty string"),
    ({"": "v"}, "non-empty string"),
    ("k=v", "not a mapping"),
    ([("k", "v")], "not a mapping"),
]


@pytest.mark.parametrize(("metadata", "needle"), BAD_METADATA)
def test_bad_metadata_is_refused(metadata: Any, needle: str) -> None:
    with pytest.raises(StripeInputError) as info:
        validate_metadata(metadata, index=1, reference="inv-1")
    assert needle in str(info.value)
    assert (info.value.field, info.value.index, info.value.reference) == ("metadata", 1, "inv-1")


def test_metadata_values_become_strings() -> None:
    metadata = {"order": 42, "ratio": 0.5, "price": Decimal("1.10"), "note": "ok", "empty": ""}
    assert validate_metadata(metadata) == {"order": "42", "ratio": "0.5", "price": "1.10", "note": "ok", "empty": ""}
    assert validate_metadata(None) == {}
    limits = {f"k{i:02d}": "v" * 500 for i in range(50)}
    assert validate_metadata(limits) == limits


# -- issue 8: nothing slips through (each fails on the code before the fix) -----------------------


@pytest.mark.parametrize("currency", ["xyz", "usd\n", "eur\n", "abc", "xts", "xxx"])
def test_only_iso_4217_currencies_pass(currency: str) -> None:
    with pytest.raises(StripeInputError, match="currency"):
        validate_currency(currency)


def test_the_iso_table_holds_stripes_currencies() -> None:
    assert {"eur", "usd", "gbp", "jpy", "chf", "bgn", "sle", "ves"} <= ISO_4217_CURRENCIES
    assert ZERO_DECIMAL_CURRENCIES | THREE_DECIMAL_CURRENCIES | set(MIN_CHARGE_AMOUNTS) <= ISO_4217_CURRENCIES


@pytest.mark.parametrize("value", ["ba_1\n", "cus_1\n", "ch_1 ", " ch_1", "ch_1\r", "ch_\u00e91", "ch_1\x00"])
def test_ids_match_exactly(value: str) -> None:
    with pytest.raises(StripeInputError, match="not a Stripe id"):
        validate_object_id(value, field="id", prefixes=("ba_", "cus_", "ch_"))
