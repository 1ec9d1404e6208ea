"""The payout batch's limits (``max_items``, ``max_total``): their arguments and the check, without Stripe."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_stripe.compat import AirflowFailException
from airflow_provider_stripe.errors import StripeBatchLimitError, StripeInputError
from airflow_provider_stripe.payouts.limits import BatchLimits


@pytest.mark.parametrize("max_items", [0, -1, True, 2.0, "5"])
def test_max_items_must_be_a_positive_integer(max_items: Any) -> None:
    with pytest.raises(StripeInputError, match=r"field 'max_items': .* use an integer >= 1"):
        BatchLimits.from_arguments(max_items, None)


@pytest.mark.parametrize(
    ("max_total", "problem"),
    [
        ({}, "use a dict of currency to total in minor units"),
        (5_000_000, "use a dict of currency to total in minor units"),
        ({"euro": 100}, "is not a currency"),
        ({"eur": 100, "EUR": 200}, "names 'eur' twice"),
        ({"eur": 12.5}, "a cap is an integer >= 1 in the currency's minor unit"),
        ({"eur": 0}, "a cap is an integer >= 1"),
        ({"eur": True}, "a cap is an integer >= 1"),
    ],
)
def test_max_total_is_a_cap_per_currency_in_minor_units(max_total: Any, problem: str) -> None:
    with pytest.raises(StripeInputError, match="field 'max_total'") as caught:
        BatchLimits.from_arguments(None, max_total)
    assert problem in str(caught.value)


def test_currencies_are_normalised_and_no_limits_means_none() -> None:
    assert BatchLimits.from_arguments(None, {"EUR": 100}).max_total == {"eur": 100}
    unlimited = BatchLimits.from_arguments(None, None)
    assert unlimited == BatchLimits()
    unlimited.check(10**6, {"eur": 10**12})


def test_a_batch_at_its_limits_passes_and_one_above_names_every_limit_with_the_totals() -> None:
    limits = BatchLimits.from_arguments(3, {"eur": 10_000, "jpy": 500})
    limits.check(3, {"eur": 10_000, "jpy": 500})  # at the limits: allowed

    with pytest.raises(StripeBatchLimitError) as caught:
        limits.check(4, {"eur": 10_001, "jpy": 400, "usd": 250})
    error = caught.value
    assert isinstance(error, AirflowFailException), "not retried: the same batch would be refused again"
    assert (error.count, error.totals) == (4, {"eur": 10_001, "jpy": 400, "usd": 250})
    message = str(error)
    for expected in (
        "refused by its limits before any request to Stripe: nothing was sent",
        "4 item(s), above max_items=3",
        "100.01 EUR in total, above max_total 100.00 EUR (eur: 10000)",
        "2.50 USD in total, and max_total has no cap for 'usd' (it caps eur, jpy)",
        "The batch: 4 item(s), 100.01 EUR, 400 JPY, 2.50 USD in total.",
        "split it or raise max_items / max_total on the task, then clear the task",
    ):
        assert expected in message, message
    assert "JPY in total" not in message, "a currency within its cap is not a problem"
