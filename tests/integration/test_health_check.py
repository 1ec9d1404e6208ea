"""The contract's health check (ping within 5000 ms, no retries), as the Test button runs it."""

from __future__ import annotations

import time

import pytest

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.hooks.stripe import StripeHook
from tests.integration.stripe_task_context import stripe_connection
from tests.servers.stub_stripe import StubServer, refused_port, run_silent_server, stripe_error

KEY = "sk_test_51HealthCheckKey"
BUDGET = STRIPE_CONTRACT.health_check.timeout_seconds


@pytest.fixture
def hook_for(monkeypatch: pytest.MonkeyPatch):
    def make(base_url: str, **extra: object) -> StripeHook:
        return StripeHook(stripe_connection(monkeypatch, base_url, **{"api_key": KEY, **extra}))

    return make


def test_ok_reports_mode_version_account(stub_stripe: StubServer, hook_for) -> None:
    ok, message = hook_for(stub_stripe.url, max_network_retries=5).test_connection()
    assert ok, message
    assert "test mode" in message and "2024-11-20.acacia" in message and stub_stripe.account_id in message
    assert KEY not in message
    assert [r.path for r in stub_stripe.requests] == ["/v1/balance", "/v1/account"]


def test_ok_against_localstripe(localstripe: str, hook_for) -> None:
    ok, message = hook_for(localstripe).test_connection()
    assert ok, message
    assert "test mode" in message


def test_invalid_key(stub_stripe: StubServer, hook_for) -> None:
    stub_stripe.api_keys = frozenset({"sk_test_other"})
    ok, message = hook_for(stub_stripe.url).test_connection()
    assert not ok
    assert "invalid API key" in message and "secret test key" in message and KEY not in message


def test_restricted_key_without_balance_permission_is_valid(stub_stripe: StubServer, hook_for) -> None:
    stub_stripe.enqueue(stripe_error(403, "invalid_request_error", message="restricted key lacks rak_balance_read"))
    ok, message = hook_for(stub_stripe.url, api_key="rk_test_51Restricted").test_connection()
    assert ok and "valid but restricted" in message and "restricted test key" in message


def test_no_retries_in_the_health_check(stub_stripe: StubServer, hook_for) -> None:
    stub_stripe.enqueue(stripe_error(500, "api_error", message="boom"))
    ok, message = hook_for(stub_stripe.url, max_network_retries=5).test_connection()
    assert not ok and "HTTP 500" in message
    assert len(stub_stripe.requests) == 1


@pytest.mark.slow
def test_server_that_never_answers_fails_within_budget(hook_for) -> None:
    with run_silent_server() as silent:
        started = time.monotonic()
        ok, message = hook_for(silent.url, timeout=60, max_network_retries=5).test_connection()
        elapsed = time.monotonic() - started
    assert not ok and "timed out" in message
    assert elapsed <= BUDGET + 0.5, elapsed


def test_refused_connection(hook_for) -> None:
    started = time.monotonic()
    ok, message = hook_for(f"http://127.0.0.1:{refused_port()}").test_connection()
    assert not ok and "could not connect" in message
    assert time.monotonic() - started < BUDGET


def test_invalid_connection_is_reported_not_raised(hook_for) -> None:
    ok, message = hook_for("http://example.com").test_connection()
    assert not ok and "base_url" in message and "allowed_base_urls in section stripe" in message
