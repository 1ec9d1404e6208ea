"""Stripe event assets: URIs, their normaliser and the event summary both event paths record."""

from __future__ import annotations

import json
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

import pytest
import stripe

from airflow_provider_stripe.events.assets import (
    event_asset,
    event_asset_uri,
    normalize_stripe_uri,
    summarize_event,
)

EVENT = {
    "id": "evt_1Abc",
    "object": "event",
    "type": "payout.paid",
    "created": 1_700_000_000,
    "livemode": False,
    "account": "acct_1Connected",
    "data": {"object": {"id": "po_1Xyz", "object": "payout", "amount": 1000, "destination": "ba_secret"}},
}
SUMMARY = {
    "event_id": "evt_1Abc",
    "type": "payout.paid",
    "created": 1_700_000_000,
    "livemode": False,
    "account": "acct_1Connected",
    "object_id": "po_1Xyz",
    "object_type": "payout",
}


def test_summary_of_a_webhook_body_and_of_an_sdk_event_agree() -> None:
    assert summarize_event(EVENT) == SUMMARY
    sdk_event = stripe.Event.construct_from(EVENT, "sk_test_x")
    assert summarize_event(sdk_event) == SUMMARY
    platform = {**EVENT}
    del platform["account"]
    assert summarize_event(platform)["account"] is None
    json.dumps(SUMMARY)


def test_summary_refuses_what_is_not_an_event() -> None:
    for bad in ({}, {"id": "evt_1"}, {"type": "payout.paid"}, {"id": 5, "type": "payout.paid"}):
        with pytest.raises(ValueError, match="not a Stripe event"):
            summarize_event(bad)


def test_event_asset_uri() -> None:
    assert event_asset_uri("payout.paid") == "stripe://events/payout.paid"
    asset = event_asset("charge.dispute.created")
    assert (asset.name, asset.uri) == ("stripe://events/charge.dispute.created",) * 2
    for bad in ("payout.*", "Payout.Paid", "payout", ""):
        with pytest.raises(ValueError, match="not a Stripe event type"):
            event_asset_uri(bad)


@pytest.mark.parametrize(
    ("uri", "normalized"),
    [
        ("stripe://Events/payout.paid", "stripe://events/payout.paid"),
        ("stripe://polled/payout-outcomes", "stripe://polled/payout-outcomes"),
    ],
)
def test_uri_normaliser_accepts(uri: str, normalized: str) -> None:
    assert urlunsplit(normalize_stripe_uri(urlsplit(uri))) == normalized


@pytest.mark.parametrize(
    "uri", ["stripe://events/payout.*", "stripe://events/", "stripe://events/payout.paid?x=1", "stripe:///payout"]
)
def test_uri_normaliser_refuses(uri: str) -> None:
    with pytest.raises(ValueError, match="stripe://"):
        normalize_stripe_uri(urlsplit(uri))


def test_airflow_applies_the_normaliser_once_registered() -> None:
    """What registering it under provider info ``asset-uris`` does: a bad URI fails at DAG parse."""
    from airflow.sdk import Asset

    assert Asset("stripe://events/payout.paid").uri == "stripe://events/payout.paid"  # accepted unregistered
    with mock.patch("airflow.sdk.definitions.asset._get_uri_normalizer", return_value=normalize_stripe_uri):
        assert Asset("stripe://EVENTS/payout.failed").uri == "stripe://events/payout.failed"
        with pytest.raises(ValueError, match="one Stripe event type"):
            Asset("stripe://events/payout.*")
