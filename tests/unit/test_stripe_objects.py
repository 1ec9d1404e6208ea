"""Reading Stripe objects the same way on stripe 14, 15 and 16 (``compat.as_dict``, ``read_field``)."""

from __future__ import annotations

import json
import warnings

import stripe

from airflow_provider_stripe.compat import as_dict, read_field

CHARGE = {
    "id": "ch_1",
    "object": "charge",
    "amount": 1000,
    "metadata": {"order": "A-1"},
    "refunds": {"object": "list", "data": [{"id": "re_1", "object": "refund", "amount": 400}]},
}


def _plain(value: object) -> bool:
    """True if ``value`` holds only plain dicts, lists and scalars (no StripeObject anywhere)."""
    if isinstance(value, dict):
        return type(value) is dict and all(_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return not isinstance(value, stripe.StripeObject)


def test_a_stripe_object_becomes_a_plain_recursive_dict_without_deprecation_warnings() -> None:
    """No warning per object: stripe 14's ``to_dict()`` warns, and a recorder of warnings keeps each one."""
    charge = stripe.StripeObject.construct_from(json.loads(json.dumps(CHARGE)), "sk_test_x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = as_dict(charge)
    assert [str(w.message) for w in caught] == []
    assert data == CHARGE and _plain(data)
    assert read_field(charge, "amount") == 1000 and read_field(charge, "missing") is None


def test_a_plain_dict_is_returned_as_it_is() -> None:
    data = json.loads(json.dumps(CHARGE))
    assert as_dict(data) is data
