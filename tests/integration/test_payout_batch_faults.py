"""A payout batch through a storm of faults: exactly N payouts, none twice.

The fault proxy sits between the provider and a real localstripe and implements Stripe's
idempotency semantics (saved results replayed, 409 while a key is in flight). It injects,
on POSTs and on the listing GETs alike: 429 with and without ``Stripe-Should-Retry``,
500, 503, connection resets before forwarding, lost answers after the payout was
created, and answers slower than the client's timeout. Airflow's retries are played by
calling ``execute`` again with the next try number until the task succeeds, with and
without a task state store. Afterwards every reference must have exactly one payout.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.constants import PAGE_SIZE
from airflow_provider_stripe.errors import StripePayoutError
from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from airflow_provider_stripe.payouts.keys import PayoutIdentity
from tests.integration.payout_helpers import MemoryStateStore, eur_items, payout_context, payouts_by_reference
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection
from tests.servers.fault_proxy import FaultKind, FaultPlan, FaultProxy

pytestmark = pytest.mark.timeout(180)

ITEMS = 150
MAX_TRIES = 15
RATES = {
    FaultKind.RATE_LIMITED_RETRY: 0.05,
    FaultKind.RATE_LIMITED: 0.05,
    FaultKind.SERVER_ERROR: 0.05,
    FaultKind.UNAVAILABLE: 0.05,
    FaultKind.RESET: 0.05,
    FaultKind.LOST_RESPONSE: 0.07,
    FaultKind.SLOW: 0.04,
}


@pytest.mark.parametrize(
    "scale",
    [
        pytest.param(0.3, id="light"),
        pytest.param(1.0, id="storm", marks=pytest.mark.slow),
        pytest.param(1.6, id="heavy", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("with_store", [True, False], ids=["state-store", "no-state-store"])
def test_fault_storm_pays_each_item_exactly_once(
    localstripe: str,
    fault_proxy: Callable[..., FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
    report: Callable[[str], None],
    with_store: bool,
    scale: float,
) -> None:
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.05)
    rates = {kind: rate * scale for kind, rate in RATES.items()}
    proxy = fault_proxy(FaultPlan(rates=rates, slow_ms=1500), seed=(7 if with_store else 11) + int(scale * 10))
    # A 1 s timeout: SLOW answers (1.5 s) time out on the client while the payout is being
    # created, and the SDK's retry meets the key still in flight (409) or its replay.
    conn_id = stripe_connection(monkeypatch, proxy.url, max_network_retries=2, timeout=1.0)
    store = MemoryStateStore() if with_store else None
    items = eur_items(ITEMS)
    outcomes: list[str] = []
    started = time.perf_counter()
    result: dict[str, Any] | None = None
    for try_number in range(1, MAX_TRIES + 1):
        op = StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn_id, payouts=items, max_workers=6)
        try:
            result = op.execute(payout_context(store=store, try_number=try_number))
            outcomes.append("success")
            break
        except StripePayoutError as exc:
            outcomes.append(f"{exc.summary.get('failed', 0)} failed")
        except Exception as exc:  # e.g. the listing itself failed after the SDK's retries
            outcomes.append(type(exc).__name__)
    seconds = time.perf_counter() - started

    stats = proxy.stats
    injected = {k.value: stats[k.value] for k in FaultKind if stats[k.value]}
    payouts_seen = payouts_by_reference(localstripe, TEST_KEY, PayoutIdentity.from_context(payout_context()).tag)
    report(
        f"[{'state store' if with_store else 'no state store'}, fault rate {sum(rates.values()):.0%}] "
        f"{ITEMS} items -> {sum(len(v) for v in payouts_seen.values())} payouts "
        f"({len(payouts_seen)} references) in {len(outcomes)} tries "
        f"({', '.join(outcomes)}), {seconds:.1f} s; proxy: {stats['requests']} requests, "
        f"{stats['forwarded']} forwarded, {stats['replayed']} replayed, "
        f"{stats['idempotency_in_use']} key-in-flight 409s; injected {injected} "
        f"({sum(injected.values()) / max(stats['requests'], 1):.0%} of requests)"
    )
    assert result is not None, f"did not succeed within {MAX_TRIES} tries: {outcomes}"
    assert result["summary"]["total"] == ITEMS
    assert result["summary"].get("created", 0) + result["summary"].get("existing", 0) == ITEMS
    tag = PayoutIdentity.from_context(payout_context()).tag
    grouped = payouts_by_reference(localstripe, TEST_KEY, tag)
    counts = Counter(len(v) for v in grouped.values())
    assert counts == {1: ITEMS}, f"payouts per reference: {counts}"
    assert sorted(grouped) == sorted(i["reference"] for i in items)
    assert stats[FaultKind.LOST_RESPONSE.value] > 0 and stats[FaultKind.SLOW.value] > 0
    assert ITEMS > PAGE_SIZE  # the listing had to page
