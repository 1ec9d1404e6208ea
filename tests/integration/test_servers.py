"""The test servers themselves: localstripe, the recording stub, the silent server, the fault proxy.

Why: every integration test of the provider trusts these servers; if one of them
silently misbehaves (e.g. the proxy forwards twice) the provider's tests prove
nothing.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import stripe

from tests.servers.fault_proxy import Fault, FaultKind, FaultPlan, FaultProxy, plan, run_fault_proxy, wait_until
from tests.servers.localstripe_server import TEST_API_KEY
from tests.servers.stub_stripe import (
    StubResponse,
    StubServer,
    refused_port,
    refused_url,
    run_silent_server,
    stripe_error,
)

API_KEY = "sk_test_servers_123"
ProxyFactory = Callable[..., FaultProxy]


class _FastRetryClient(stripe.RequestsClient):
    """The SDK's requests transport with 10 ms retry back-off (keeps retry tests fast)."""

    # stripe 14 passes the response too (for Retry-After), stripe 15+ does not: accept both.
    def _sleep_time_seconds(self, num_retries: int, *args: Any, **kwargs: Any) -> float:
        return 0.01


def client(url: str, *, retries: int = 0, timeout: float = 5.0, **kwargs: Any) -> stripe.StripeClient:
    """A StripeClient pointed at a local server."""
    return stripe.StripeClient(
        api_key=kwargs.pop("api_key", API_KEY),
        base_addresses={"api": url},
        max_network_retries=retries,
        http_client=_FastRetryClient(timeout=timeout),
        **kwargs,
    )


def post_payout(
    url: str, key: str | None, amount: int = 1000, *, api_key: str = API_KEY, account: str | None = None
) -> requests.Response:
    """Raw ``POST /v1/payouts`` (no SDK, no retries), optionally idempotent / on a connected account."""
    hdrs = {"Authorization": f"Bearer {api_key}"}
    if account is not None:
        hdrs["Stripe-Account"] = account
    if key is not None:
        hdrs["Idempotency-Key"] = key
    return requests.post(f"{url}/v1/payouts", data={"amount": amount, "currency": "eur"}, headers=hdrs, timeout=5)


def upstream_payouts(url: str, account: str | None = None) -> list[dict[str, Any]]:
    """The payouts of one account (default: the platform) the local Stripe holds, bypassing any proxy."""
    headers = {"Stripe-Account": account} if account else {}
    resp = requests.get(f"{url}/v1/payouts", params={"limit": 100}, headers=headers, auth=(TEST_API_KEY, ""), timeout=5)
    resp.raise_for_status()
    return list(resp.json()["data"])


# -- localstripe -------------------------------------------------------------------


def test_localstripe_creates_lists_and_retrieves_payouts(localstripe: str) -> None:
    sc = client(localstripe)
    created = sc.v1.payouts.create({"amount": 1234, "currency": "eur", "metadata": {"batch": "b1"}})
    assert created.id.startswith("po_")
    assert (created.status, created.amount) == ("pending", 1234)
    assert created.metadata is not None and created.metadata["batch"] == "b1"
    listed = sc.v1.payouts.list({"limit": 10})
    assert [p.id for p in listed.data] == [created.id]
    assert sc.v1.payouts.retrieve(created.id).amount == 1234


def test_localstripe_state_is_flushed_per_test(localstripe: str) -> None:
    assert upstream_payouts(localstripe) == []
    assert requests.get(f"{localstripe}/v1/events", auth=(API_KEY, ""), timeout=5).json()["data"] == []


def test_localstripe_binds_loopback_only_and_never_pickles(localstripe: str) -> None:
    port = int(localstripe.rsplit(":", 1)[1])
    assert localstripe.startswith("http://127.0.0.1:")
    with pytest.raises(OSError):
        socket.create_connection(("::1", port), timeout=1).close()
    pickle = "/tmp/localstripe.pickle"
    before = os.stat(pickle).st_mtime_ns if os.path.exists(pickle) else None
    post_payout(localstripe, None).raise_for_status()
    after = os.stat(pickle).st_mtime_ns if os.path.exists(pickle) else None
    assert before == after


def test_localstripe_quirks_the_front_covers(localstripe_upstream: str) -> None:
    localstripe = localstripe_upstream  # localstripe itself, without the front
    sc = client(localstripe)
    with pytest.raises(stripe.InvalidRequestError):  # only eur
        sc.v1.payouts.create({"amount": 100, "currency": "usd"})
    payout = sc.v1.payouts.create({"amount": 100, "currency": "eur"})
    # Status can be forced through an update (not possible on real Stripe).
    paid = requests.post(
        f"{localstripe}/v1/payouts/{payout.id}", data={"status": "paid"}, auth=(API_KEY, ""), timeout=5
    ).json()
    assert paid["status"] == "paid"
    # List filters other than limit/starting_after are rejected.
    resp = requests.get(f"{localstripe}/v1/payouts", params={"created[gt]": 1}, auth=(API_KEY, ""), timeout=5)
    assert (resp.status_code, resp.json()["error"]["message"]) == (400, "Unexpected created")
    # Idempotency-Key is ignored: two payouts.
    ids = {post_payout(localstripe, "same-key").json()["id"] for _ in range(2)}
    assert len(ids) == 2
    # Balance lists are single objects; no /v1/account.
    balance = requests.get(f"{localstripe}/v1/balance", auth=(API_KEY, ""), timeout=5).json()
    assert balance["available"]["currency"] == "eur" and "object" not in balance
    account = requests.get(f"{localstripe}/v1/account", auth=(API_KEY, ""), timeout=5)
    assert (account.status_code, account.headers["Content-Type"].split(";")[0]) == (404, "text/plain")
    # Events: oldest first, exact type filter.
    types = [e.type for e in sc.v1.events.list({"type": "payout.created"}).data]
    assert types == ["payout.created"] * 3


# -- recording stub ----------------------------------------------------------------


def test_stub_records_headers_and_answers_balance_and_account(stub_stripe: StubServer) -> None:
    sc = client(stub_stripe.url, stripe_account="acct_connected_1")
    balance = sc.v1.balance.retrieve()
    assert balance.object == "balance" and balance.livemode is False
    assert balance.available[0].currency == "eur"
    account = sc.v1.accounts.retrieve_current()
    assert (account.object, account.id) == ("account", stub_stripe.account_id)
    first, second = stub_stripe.requests
    assert (first.method, first.path, second.path) == ("GET", "/v1/balance", "/v1/account")
    assert first.headers["authorization"] == f"Bearer {API_KEY}"
    assert first.headers["Stripe-Account"] == "acct_connected_1"
    assert first.api_key == API_KEY
    assert "Stripe-Version" in first.headers and "User-Agent" in first.headers


def test_stub_records_post_body_and_idempotency_key(stub_stripe: StubServer) -> None:
    stub_stripe.responder = lambda req: StubResponse(200, {"id": "po_stub", "object": "payout", "status": "pending"})
    sc = client(stub_stripe.url)
    sc.v1.payouts.create({"amount": 5, "currency": "eur", "metadata": {"k": "v"}}, {"idempotency_key": "idem-1"})
    (req,) = stub_stripe.requests_to("/v1/payouts", "POST")
    assert req.headers["Idempotency-Key"] == "idem-1"
    assert req.form == {"amount": "5", "currency": "eur", "metadata[k]": "v"}


def test_stub_scripts_errors_headers_and_delays(stub_stripe: StubServer) -> None:
    stub_stripe.enqueue(
        stripe_error(
            429,
            code="rate_limit",
            message="slow down",
            headers={"Stripe-Should-Retry": "false", "Request-Id": "req_scripted"},
        ),
        StubResponse(200, stub_stripe.balance, delay_s=0.3),
    )
    sc = client(stub_stripe.url, retries=2)
    with pytest.raises(stripe.RateLimitError) as err:
        sc.v1.balance.retrieve()
    assert (err.value.request_id, err.value.http_status) == ("req_scripted", 429)
    assert err.value.json_body == {
        "error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow down"}
    }
    assert len(stub_stripe.requests) == 1  # Stripe-Should-Retry: false stops the SDK retrying
    started = time.monotonic()
    sc.v1.balance.retrieve()
    assert time.monotonic() - started >= 0.3


def test_stub_rejects_missing_and_unknown_keys(stub_stripe: StubServer) -> None:
    assert requests.get(f"{stub_stripe.url}/v1/balance", timeout=5).status_code == 401
    stub_stripe.api_keys = frozenset({API_KEY})
    with pytest.raises(stripe.AuthenticationError):
        client(stub_stripe.url, api_key="sk_test_wrong").v1.balance.retrieve()
    assert client(stub_stripe.url).v1.balance.retrieve().object == "balance"


def test_stub_can_drop_the_connection(stub_stripe: StubServer) -> None:
    stub_stripe.enqueue(StubResponse(drop=True))
    with pytest.raises(stripe.APIConnectionError):
        client(stub_stripe.url).v1.balance.retrieve()


def test_silent_server_makes_the_client_time_out() -> None:
    with run_silent_server() as silent:
        started = time.monotonic()
        with pytest.raises(stripe.APIConnectionError):
            client(silent.url, timeout=0.3).v1.balance.retrieve()
        assert time.monotonic() - started < 3
        assert silent.accepted == 1


def test_refused_port_refuses() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", refused_port()), timeout=1).close()
    with pytest.raises(stripe.APIConnectionError):
        client(refused_url()).v1.balance.retrieve()


# -- fault proxy: idempotency ------------------------------------------------------------


def test_proxy_passes_requests_through(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy()
    payout = client(proxy.url).v1.payouts.create({"amount": 77, "currency": "eur"})
    assert [p["id"] for p in upstream_payouts(localstripe)] == [payout.id]
    assert client(proxy.url).v1.payouts.retrieve(payout.id).amount == 77
    stats = proxy.stats
    assert (stats["requests"], stats["forwarded"], stats["replayed"]) == (2, 2, 0)
    assert requests.get(f"{proxy.url}/_config/data", timeout=5).status_code == 404
    assert requests.put(f"{proxy.url}/v1/payouts", timeout=5).status_code == 405


def test_same_key_same_params_replays_without_forwarding(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy()
    first = post_payout(proxy.url, "key-1")
    second = post_payout(proxy.url, "key-1")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Original-Request"] == first.headers["Request-Id"]
    assert len(upstream_payouts(localstripe)) == 1
    assert (proxy.stats["forwarded"], proxy.stats["replayed"]) == (1, 1)


def test_keys_are_scoped_per_api_key_and_account(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy()
    ids = {
        post_payout(proxy.url, "shared").json()["id"],
        post_payout(proxy.url, "shared", api_key="sk_test_other").json()["id"],
        post_payout(proxy.url, "shared", account="acct_1").json()["id"],
        post_payout(proxy.url, "shared", account="acct_1").json()["id"],  # replay
    }
    assert len(ids) == 3 and len(upstream_payouts(localstripe)) == 2
    assert len(upstream_payouts(localstripe, "acct_1")) == 1, "listed by its connected account only"


def test_same_key_different_params_is_an_idempotency_error(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy()
    assert post_payout(proxy.url, "key-2", amount=100).status_code == 200
    resp = post_payout(proxy.url, "key-2", amount=200)
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "idempotency_error"
    assert resp.json()["error"]["message"].startswith("Keys for idempotent requests can only be used")
    with pytest.raises(stripe.IdempotencyError):
        client(proxy.url).v1.payouts.create({"amount": 300, "currency": "eur"}, {"idempotency_key": "key-2"})
    assert len(upstream_payouts(localstripe)) == 1
    assert proxy.stats["idempotency_mismatch"] == 2


def test_key_in_flight_is_409(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy(plan(Fault(FaultKind.SLOW, delay_ms=600)))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(post_payout, proxy.url, "key-3")
        assert wait_until(lambda: proxy.stats["slow"] == 1)
        time.sleep(0.1)
        busy = post_payout(proxy.url, "key-3")
        assert busy.status_code == 409
        assert busy.json()["error"] == {
            "type": "idempotency_error",
            "code": "idempotency_key_in_use",
            "message": busy.json()["error"]["message"],
        }
        assert slow.result(timeout=5).status_code == 200
    assert post_payout(proxy.url, "key-3").headers["Idempotent-Replayed"] == "true"
    assert len(upstream_payouts(localstripe)) == 1


def test_lost_response_executes_once_and_the_retry_replays(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy(plan(FaultKind.LOST_RESPONSE))
    with pytest.raises(requests.ConnectionError):
        post_payout(proxy.url, "key-4")
    (created,) = upstream_payouts(localstripe)  # it happened upstream
    retry = post_payout(proxy.url, "key-4")
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == created["id"]
    assert len(upstream_payouts(localstripe)) == 1
    assert (proxy.stats["lost_response"], proxy.stats["forwarded"], proxy.stats["replayed"]) == (1, 1, 1)


def test_sdk_retry_after_lost_response_yields_exactly_one_payout(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy(plan(FaultKind.LOST_RESPONSE, FaultKind.RESET))
    payout = client(proxy.url, retries=3).v1.payouts.create({"amount": 999, "currency": "eur"})
    assert [p["id"] for p in upstream_payouts(localstripe)] == [payout.id]
    outcomes = [r.outcome for r in proxy.records]
    assert outcomes == ["lost_after_forwarded", "reset", "replayed"]
    assert len({r.idempotency_key for r in proxy.records}) == 1  # the SDK reused its key


def test_server_errors_are_not_saved_but_client_errors_are(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy(plan(FaultKind.SERVER_ERROR, FaultKind.UNAVAILABLE, FaultKind.RATE_LIMITED))
    assert [post_payout(proxy.url, "key-5").status_code for _ in range(4)] == [500, 503, 429, 200]
    assert proxy.stats["forwarded"] == 1 and len(upstream_payouts(localstripe)) == 1
    bad = {"amount": 1, "currency": "usd"}  # localstripe answers 400: saved and replayed
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "key-6"}
    first = requests.post(f"{proxy.url}/v1/payouts", data=bad, headers=headers, timeout=5)
    again = requests.post(f"{proxy.url}/v1/payouts", data=bad, headers=headers, timeout=5)
    assert first.status_code == again.status_code == 400
    assert again.headers["Idempotent-Replayed"] == "true"
    assert proxy.stats["forwarded"] == 2


def test_upstream_down_is_502_and_not_saved() -> None:
    with run_fault_proxy(refused_url()) as proxy:
        resp = post_payout(proxy.url, "key-7")
        assert resp.status_code == 502 and resp.json()["error"]["type"] == "api_error"
        assert post_payout(proxy.url, "key-7").status_code == 502  # not a replay
        assert proxy.stats["upstream_errors"] == 2 and proxy.stats["replayed"] == 0


# -- fault proxy: each fault kind ------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "should_retry"),
    [
        (FaultKind.RATE_LIMITED_RETRY, 429, "true"),
        (FaultKind.RATE_LIMITED, 429, None),
        (FaultKind.SERVER_ERROR, 500, None),
        (FaultKind.UNAVAILABLE, 503, None),
    ],
)
def test_error_faults(
    fault_proxy: ProxyFactory, localstripe: str, kind: FaultKind, status: int, should_retry: str | None
) -> None:
    proxy = fault_proxy(plan(kind))
    resp = post_payout(proxy.url, None)
    assert resp.status_code == status
    assert resp.headers.get("Stripe-Should-Retry") == should_retry
    assert resp.headers["Request-Id"].startswith("req_")
    assert set(resp.json()["error"]) >= {"type", "message"}
    assert upstream_payouts(localstripe) == []
    assert proxy.stats[kind.value] == 1 and proxy.stats["forwarded"] == 0


def test_sdk_sees_each_error_fault(fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(plan(FaultKind.RATE_LIMITED_RETRY, FaultKind.RATE_LIMITED, FaultKind.SERVER_ERROR))
    sc = client(proxy.url)
    with pytest.raises(stripe.RateLimitError):
        sc.v1.balance.retrieve()
    with pytest.raises(stripe.RateLimitError):
        sc.v1.balance.retrieve()
    with pytest.raises(stripe.APIError):
        sc.v1.balance.retrieve()
    proxy.inject_next(FaultKind.RATE_LIMITED_RETRY, FaultKind.UNAVAILABLE)
    assert client(proxy.url, retries=2).v1.balance.retrieve()["available"]  # retried through both


def test_reset_fault_never_reaches_upstream(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy(plan(FaultKind.RESET))
    with pytest.raises(requests.ConnectionError):
        post_payout(proxy.url, "key-8")
    assert upstream_payouts(localstripe) == []
    assert post_payout(proxy.url, "key-8").headers.get("Idempotent-Replayed") is None  # executed now
    assert (proxy.stats["reset"], proxy.stats["forwarded"]) == (1, 1)


def test_slow_fault_delays_the_answer(fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(FaultPlan(script=(FaultKind.SLOW,), slow_ms=300))
    started = time.monotonic()
    assert post_payout(proxy.url, None).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(stripe.APIConnectionError):  # and it can make a client time out
        proxy.inject_next(Fault(FaultKind.SLOW, delay_ms=1000))
        client(proxy.url, timeout=0.2).v1.payouts.list()


def test_fault_plan_filters_methods_and_changes_at_runtime(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy(plan(FaultKind.SERVER_ERROR, methods=frozenset({"POST"})))
    assert requests.get(f"{proxy.url}/v1/payouts", auth=(API_KEY, ""), timeout=5).status_code == 200
    assert post_payout(proxy.url, None).status_code == 500
    assert post_payout(proxy.url, None).status_code == 200  # script exhausted, no rates
    proxy.set_plan(FaultPlan(rates={FaultKind.UNAVAILABLE: 1.0}))
    assert requests.get(f"{proxy.url}/v1/payouts", auth=(API_KEY, ""), timeout=5).status_code == 503
    proxy.clear_faults()
    assert requests.get(f"{proxy.url}/v1/payouts", auth=(API_KEY, ""), timeout=5).status_code == 200
    with pytest.raises(ValueError):
        FaultPlan(rates={FaultKind.RESET: 0.7, FaultKind.SLOW: 0.7})


def _fault_sequence(proxy: FaultProxy, n: int) -> list[FaultKind | None]:
    for _ in range(n):
        requests.get(f"{proxy.url}/v1/balance", auth=(API_KEY, ""), timeout=5)
    return [r.fault for r in proxy.records]


def test_rates_are_seeded_and_deterministic(fault_proxy: ProxyFactory) -> None:
    rates = {FaultKind.SERVER_ERROR: 0.3, FaultKind.RATE_LIMITED: 0.2}
    first = _fault_sequence(fault_proxy(FaultPlan(rates=rates), seed=7), 40)
    second = _fault_sequence(fault_proxy(FaultPlan(rates=rates), seed=7), 40)
    other = _fault_sequence(fault_proxy(FaultPlan(rates=rates), seed=8), 40)
    assert first == second != other
    assert 5 <= first.count(FaultKind.SERVER_ERROR) <= 20
    assert 2 <= first.count(FaultKind.RATE_LIMITED) <= 15


def test_proxy_handles_concurrent_requests(fault_proxy: ProxyFactory, localstripe: str) -> None:
    proxy = fault_proxy(FaultPlan(rates={FaultKind.SLOW: 1.0}, slow_ms=200))
    barrier = threading.Barrier(16)

    def create(i: int) -> int:
        barrier.wait(timeout=5)
        return post_payout(proxy.url, f"concurrent-{i}").status_code

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(create, range(16)))
    assert statuses == [200] * 16
    assert time.monotonic() - started < 2  # 16 x 200 ms in parallel, not in series
    assert len(upstream_payouts(localstripe)) == 16
