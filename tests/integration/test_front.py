"""The Stripe-faithful front before a real localstripe, through the stripe SDK and plain HTTP.

The list semantics themselves are checked object by object in ``tests/unit/test_front_lists.py``;
here: the same semantics end to end (SDK auto-pagination both ways, ``created`` bounds on real
objects, Stripe-shaped 400s), ``/v1/account``, the pass-through, and the request log.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
import requests
import stripe

from tests.servers.localstripe_server import TEST_API_KEY, clear_request_log, request_log

pytestmark = pytest.mark.timeout(60)


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_API_KEY, base_addresses={"api": url})


def _get(url: str, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{url}{path}", params=params, auth=(TEST_API_KEY, ""), timeout=5)


def _next_second(after: int) -> None:
    while int(time.time()) <= after:
        time.sleep(0.05)


def test_created_bounds_and_paging_on_real_payouts(localstripe: str, localstripe_upstream: str) -> None:
    client = _client(localstripe)
    first = [client.v1.payouts.create({"amount": 100 + i, "currency": "eur"}) for i in range(3)]
    _next_second(first[-1].created)
    second = [client.v1.payouts.create({"amount": 200 + i, "currency": "eur"}) for i in range(4)]
    # Under load a group may straddle a second: bound each group by its own extremes.
    t0, t1, t2 = min(p.created for p in first), max(p.created for p in first), min(p.created for p in second)
    assert t1 < t2
    newest_first = [p.id for p in reversed(second)] + [p.id for p in reversed(first)]
    at_t2 = [p.id for p in reversed(second) if p.created == t2]

    def listed(**params: Any) -> list[str]:
        return [p.id for p in client.v1.payouts.list({"limit": 2, **params}).auto_paging_iter()]

    assert listed() == newest_first  # 4 pages of 2 with starting_after
    assert listed(created={"gte": t2}) == newest_first[:4]
    assert listed(created={"gt": t1}) == newest_first[:4]
    assert listed(created={"lt": t2}) == newest_first[4:]
    assert listed(created={"lte": t1}) == newest_first[4:]
    assert listed(created={"gte": t0, "lt": t2}) == newest_first[4:]
    assert listed(created=t2) == at_t2
    assert listed(created={"gt": t2}) == []
    # ending_before walks towards newer objects; the SDK's auto-pagination follows it.
    backwards = client.v1.payouts.list({"limit": 2, "ending_before": newest_first[-1]})
    assert [p.id for p in backwards.data] == newest_first[-3:-1] and backwards.has_more
    assert [p.id for p in backwards.auto_paging_iter()] == newest_first[-2::-1]
    # localstripe itself still holds them oldest first and knows no created filter.
    assert [p["id"] for p in _get(localstripe_upstream, "/v1/payouts", limit=100).json()["data"]] == newest_first[::-1]


def test_stripe_shaped_refusals(localstripe: str) -> None:
    client = _client(localstripe)
    client.v1.payouts.create({"amount": 100, "currency": "eur"})
    for params, param in [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"starting_after": "po_a", "ending_before": "po_b"}, "ending_before"),
        ({"starting_after": "po_unknown"}, "starting_after"),
        ({"created[gte]": "yesterday"}, "created[gte]"),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as info:
            client.v1.payouts.list(params)  # type: ignore[arg-type]
        assert (info.value.http_status, info.value.param) == (400, param), params
    assert _get(localstripe, "/v1/payouts", limit=100).json()["has_more"] is False


def test_status_filter_and_events_and_charges_are_stripe_lists(localstripe: str) -> None:
    client = _client(localstripe)
    paid = client.v1.payouts.create({"amount": 100, "currency": "eur", "status": "paid"})  # type: ignore[typeddict-unknown-key]
    pending = client.v1.payouts.create({"amount": 200, "currency": "eur"})
    assert [p.id for p in client.v1.payouts.list({"status": "paid"}).data] == [paid.id]
    # A write through the front drops its copy of the list: the next listing sees it.
    requests.post(f"{localstripe}/v1/payouts/{pending.id}", data={"status": "paid"}, auth=(TEST_API_KEY, ""), timeout=5)
    assert [p.id for p in client.v1.payouts.list({"status": "paid"}).data] == [pending.id, paid.id]
    events = client.v1.events.list({"type": "payout.created", "limit": 1})
    assert events.has_more and events.data[0].data.object["amount"] == 200  # newest first
    charge = client.v1.charges.create({"amount": 500, "currency": "eur", "source": "pm_card_visa"})
    page = _get(localstripe, "/v1/charges", **{"created[gte]": charge.created, "created[lt]": charge.created + 1})
    assert [c["id"] for c in page.json()["data"]] == [charge.id] and "total_count" not in page.json()


def test_account_and_pass_through(localstripe: str) -> None:
    account = _client(localstripe).v1.accounts.retrieve_current()
    assert account.id.startswith("acct_") and account.object == "account"
    assert requests.get(f"{localstripe}/v1/account", timeout=5).status_code == 401  # no key: localstripe's 401
    assert _get(localstripe, "/v1/payouts/po_missing").status_code == 404  # forwarded unchanged


def test_request_log_records_queries_and_is_cleared_by_the_flush(localstripe: str) -> None:
    client = _client(localstripe)
    client.v1.payouts.list({"created": {"gte": 1700000000, "lt": 1800000000}, "limit": 3})
    client.v1.payouts.create({"amount": 100, "currency": "eur"})
    log = request_log(localstripe)
    assert [(r.method, r.path, r.status) for r in log] == [("GET", "/v1/payouts", 200), ("POST", "/v1/payouts", 200)]
    assert log[0].params == {"created[gte]": "1700000000", "created[lt]": "1800000000", "limit": "3"}
    clear_request_log(localstripe)
    assert request_log(localstripe) == []
    client.v1.balance.retrieve()
    requests.delete(f"{localstripe}/_config/data", timeout=5).raise_for_status()
    assert request_log(localstripe) == []


@pytest.mark.slow
def test_command_serves_the_front_and_settles_payouts() -> None:
    """``python -m airflow_provider_stripe.testing.localstripe --settle``, as the README shows it."""
    command = [sys.executable, "-m", "airflow_provider_stripe.testing.localstripe", "--port", "0", "--settle", "0.5"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().split("=", 1)[1].split()[0]
        told: list[str] = []  # what to put in the connection (Airflow 3.1 may log its start-up first)
        while len(told) < 200 and not any(f"base_url={url}" in line for line in told):
            line = proc.stderr.readline()
            if not line:
                break
            told.append(line)
        assert any(f"base_url={url}" in line for line in told), told[-5:]
        payout = _client(url).v1.payouts.create({"amount": 100, "currency": "eur"})
        deadline = time.monotonic() + 15
        while _client(url).v1.payouts.retrieve(payout.id).status != "paid":
            assert time.monotonic() < deadline, "the settlement simulator never paid the payout"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
