"""The files base (Stripe's files host for report results) is derived from the connection's base_url, once."""

from __future__ import annotations

import pytest

from airflow_provider_stripe.connection.config import STRIPE_FILES_BASE_URL
from airflow_provider_stripe.hooks.stripe import StripeHook
from tests.integration.stripe_task_context import stripe_connection


def test_stripe_base_means_stripe_files_host(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = StripeHook(stripe_connection(monkeypatch, "https://api.stripe.com"))
    assert hook.config.base_addresses()["files"] == STRIPE_FILES_BASE_URL == "https://files.stripe.com"
    assert hook.get_client()._requestor._options.base_addresses["files"] == "https://files.stripe.com"


def test_local_server_serves_its_own_files(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = StripeHook(stripe_connection(monkeypatch, "http://127.0.0.1:12111"))
    assert hook.config.base_addresses()["files"] == "http://127.0.0.1:12111"
    assert hook.get_client()._requestor._options.base_addresses["files"] == "http://127.0.0.1:12111"
