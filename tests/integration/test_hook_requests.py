"""What the StripeHook actually sends, observed by a recording Stripe stub on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import stripe

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.errors import StripeConfigurationError, from_stripe_error
from airflow_provider_stripe.hooks.stripe import StripeHook
from tests.integration.stripe_task_context import stripe_connection
from tests.servers.stub_stripe import StubResponse, StubServer, run_silent_server, stripe_error

KEY = "sk_test_51HookRequestsKey"
WHSEC = "whsec_hookrequests"

MakeHook = Callable[..., StripeHook]


@pytest.fixture
def make_hook(monkeypatch: pytest.MonkeyPatch) -> MakeHook:
    def make(base_url: str, **extra: object) -> StripeHook:
        return StripeHook(stripe_connection(monkeypatch, base_url, **{"api_key": KEY, **extra}))

    return make


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.02)


def test_every_request_carries_contract_headers(stub_stripe: StubServer, make_hook: MakeHook) -> None:
    client = make_hook(stub_stripe.url).get_client()
    client.v1.balance.retrieve()
    (req,) = stub_stripe.requests
    assert req.headers["Authorization"] == f"{STRIPE_CONTRACT.api_key_auth.prefix}{KEY}"
    assert req.headers["Stripe-Version"] == "2024-11-20.acacia"
    assert "Stripe-Account" not in req.headers


def test_connected_account_header_and_per_call_override(stub_stripe: StubServer, make_hook: MakeHook) -> None:
    hook = make_hook(stub_stripe.url, account_id="acct_1Connected")
    hook.get_client().v1.balance.retrieve()
    hook.get_client(account_id="acct_1Other").v1.balance.retrieve()
    hook.get_client(account_id=None).v1.balance.retrieve()
    StripeHook(hook.stripe_conn_id, account_id="acct_1Task").get_client().v1.balance.retrieve()
    accounts = [r.headers.get("Stripe-Account") for r in stub_stripe.requests]
    assert accounts == ["acct_1Connected", "acct_1Other", None, "acct_1Task"]


def test_publishable_key_sends_nothing(stub_stripe: StubServer, make_hook: MakeHook) -> None:
    hook = make_hook(stub_stripe.url, api_key="pk_test_123")
    with pytest.raises(StripeConfigurationError, match="publishable"):
        hook.get_client()
    ok, message = hook.test_connection()
    assert not ok and "publishable" in message
    assert stub_stripe.requests == []


@pytest.mark.parametrize(
    ("answers", "expected_requests", "succeeds"),
    [
        ([stripe_error(429, "rate_limit_error")], 2, True),
        ([stripe_error(429, "rate_limit_error", headers={"Stripe-Should-Retry": "false"})], 1, False),
        ([stripe_error(500, "api_error"), stripe_error(503, "api_error")], 3, True),
        ([stripe_error(409, "idempotency_error", "idempotency_key_in_use")], 2, True),
        ([stripe_error(400, "invalid_request_error", headers={"Stripe-Should-Retry": "true"})], 2, True),
        ([stripe_error(400, "invalid_request_error")], 1, False),
        ([stripe_error(500, "api_error")] * 5, 4, False),  # bounded: 1 + max_network_retries
        ([StubResponse(drop=True)], 2, True),  # connection reset
    ],
    ids=["429", "429-should-not", "5xx", "409", "should-retry-true", "400", "bounded", "reset"],
)
def test_retry_policy(
    stub_stripe: StubServer,
    make_hook: MakeHook,
    fast_backoff: None,
    answers: list[StubResponse],
    expected_requests: int,
    succeeds: bool,
) -> None:
    stub_stripe.enqueue(*answers)
    client = make_hook(stub_stripe.url, max_network_retries=3).get_client()
    if succeeds:
        client.v1.balance.retrieve()
    else:
        with pytest.raises(stripe.StripeError):
            client.v1.balance.retrieve()
    assert len(stub_stripe.requests) == expected_requests


def test_retried_post_reuses_one_idempotency_key(
    stub_stripe: StubServer, make_hook: MakeHook, fast_backoff: None
) -> None:
    stub_stripe.enqueue(stripe_error(500, "api_error"), StubResponse(200, {"id": "po_1", "object": "payout"}))
    client = make_hook(stub_stripe.url, max_network_retries=2).get_client()
    client.v1.payouts.create({"amount": 100, "currency": "eur"})
    keys = {r.headers.get("Idempotency-Key") for r in stub_stripe.requests}
    assert len(stub_stripe.requests) == 2 and len(keys) == 1 and None not in keys


def test_error_message_names_type_code_request_id_never_key(stub_stripe: StubServer, make_hook: MakeHook) -> None:
    stub_stripe.enqueue(
        stripe_error(402, "card_error", "card_declined", message=f"Your card was declined (key {KEY}).",
                     decline_code="insufficient_funds")
    )  # fmt: skip
    client = make_hook(stub_stripe.url, max_network_retries=0).get_client()
    with pytest.raises(stripe.StripeError) as info:
        client.v1.balance.retrieve()
    err = from_stripe_error(info.value, "balance retrieve")
    text = str(err)
    for part in ("card_error", "card_declined", "insufficient_funds", "req_stub", "declined"):
        assert part in text
    assert KEY not in text and "sk_test_***" in text
    assert err.is_definitive


def test_request_timeout_applies(make_hook: MakeHook) -> None:
    with run_silent_server() as silent:
        client = make_hook(silent.url, timeout=0.5, max_network_retries=0).get_client()
        started = time.monotonic()
        with pytest.raises(stripe.APIConnectionError):
            client.v1.balance.retrieve()
        assert time.monotonic() - started < 2


async def test_async_client_carries_headers(stub_stripe: StubServer, make_hook: MakeHook) -> None:
    client = make_hook(stub_stripe.url, account_id="acct_1Async").get_client()
    balance = await client.v1.balance.retrieve_async()
    assert balance.object == "balance"
    (req,) = stub_stripe.requests
    assert req.headers["Stripe-Version"] == "2024-11-20.acacia"
    assert req.headers["Stripe-Account"] == "acct_1Async"
    assert req.headers["Authorization"] == f"Bearer {KEY}"


def test_secrets_are_registered_with_the_masker(stub_stripe: StubServer, make_hook: MakeHook) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    hook = make_hook(stub_stripe.url, webhook_secret="whsec_one,whsec_two", oauth_refresh_token="rt_refresh123")
    hook.config  # noqa: B018 - loading the config registers the secrets
    text = f"key={KEY} secrets=whsec_one whsec_two token=rt_refresh123"
    redacted = redact(text)
    for secret in (KEY, "whsec_one", "whsec_two", "rt_refresh123"):
        assert secret not in redacted
