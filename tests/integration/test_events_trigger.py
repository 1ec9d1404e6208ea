"""StripeEventTrigger run directly with asyncio against real localstripe events (behind the front).

The front lists events newest first, as Stripe does; localstripe has 1-second ``created``
resolution, so the payouts whose events must come out in a given order are created more
than a second apart.
``status`` given at payout creation makes localstripe emit ``payout.paid`` / ``payout.failed``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import stripe

from airflow_provider_stripe.triggers.events import (
    MAX_SEEN,
    EventCursor,
    StripeEventTrigger,
    backoff_delay,
)
from tests.integration.stripe_task_context import stripe_connection
from tests.servers.fault_proxy import FaultKind, FaultPlan
from tests.servers.localstripe_server import TEST_API_KEY

pytestmark = pytest.mark.timeout(90)

OUTCOMES = ["payout.paid", "payout.failed"]


@pytest.fixture
def conn_for(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a ``stripe`` connection (env var) against ``base_url``; return its id."""

    def make(base_url: str, **extra: Any) -> str:
        return stripe_connection(monkeypatch, base_url, **{"api_key": TEST_API_KEY, **extra})

    return make


def payout(base_url: str, status: str | None = None) -> str:
    """Create a localstripe payout (``status`` paid/failed emits payout.paid/payout.failed)."""
    client = stripe.StripeClient(TEST_API_KEY, base_addresses={"api": base_url})
    params: dict[str, Any] = {"amount": 1000, "currency": "eur"}
    if status:
        params["status"] = status
    return str(client.v1.payouts.create(params).id)  # type: ignore[arg-type]


async def collect(trigger: StripeEventTrigger, count: int, *, quiet: float) -> list[dict[str, Any]]:
    """Take ``count`` events, then keep the trigger running ``quiet`` s and fail on any extra event.

    The quiet period spans at least two polls, so the cursor of the last batch is saved
    (it is saved one poll interval after the batch) and re-polls prove nothing repeats.
    """
    events: list[dict[str, Any]] = []
    stream = trigger.run()
    try:
        while len(events) < count:
            event = await asyncio.wait_for(anext(stream), timeout=20)
            events.append(event.payload)
        with pytest.raises(asyncio.TimeoutError):  # TimeoutError on 3.11+, distinct on 3.10
            extra = await asyncio.wait_for(anext(stream), timeout=quiet)
            pytest.fail(f"unexpected extra event {extra.payload}")
    finally:
        await stream.aclose()
    return events


def event_types(base_url: str) -> list[tuple[str, str]]:
    """(type, object id) of every event the local server holds, newest first (Stripe's order)."""
    data = requests.get(f"{base_url}/v1/events", params={"limit": 100}, auth=(TEST_API_KEY, ""), timeout=5).json()
    return [(e["type"], e["data"]["object"]["id"]) for e in data["data"]]


@pytest.mark.slow
async def test_fires_each_event_once_in_order_and_resumes_from_its_cursor(localstripe: str, conn_for) -> None:
    conn_id = conn_for(localstripe)
    first = payout(localstripe, "paid")
    time.sleep(1.1)
    second = payout(localstripe, "failed")
    payout(localstripe)  # pending: payout.created only, filtered out
    time.sleep(1.1)
    third = payout(localstripe, "paid")

    trigger = StripeEventTrigger(
        stripe_conn_id=conn_id, types=OUTCOMES, start_from="oldest", poll_interval=1, lookback=5
    )
    events = await collect(trigger, 3, quiet=2.5)

    assert [(e["type"], e["object_id"]) for e in events] == [
        ("payout.paid", first),
        ("payout.failed", second),
        ("payout.paid", third),
    ]
    assert len({e["event_id"] for e in events}) == 3
    assert all(e["object_type"] == "payout" and e["livemode"] is False and e["account"] is None for e in events)
    assert [e["created"] for e in events] == sorted(e["created"] for e in events)
    json.dumps(events)  # the payload is plain JSON

    # A second trigger built from the first one's saved cursor fires only what came after.
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_stripe.triggers.events.StripeEventTrigger"
    assert kwargs["cursor"] is not None and TEST_API_KEY not in json.dumps(kwargs)
    fourth = payout(localstripe, "failed")
    resumed = StripeEventTrigger(**kwargs)
    later = await collect(resumed, 1, quiet=2.5)
    assert [(e["type"], e["object_id"]) for e in later] == [("payout.failed", fourth)]
    assert ("payout.created", fourth) in event_types(localstripe)  # other types existed, and were skipped


@pytest.mark.slow
async def test_start_from_now_skips_history(localstripe: str, conn_for) -> None:
    payout(localstripe, "paid")
    time.sleep(1.1)
    trigger = StripeEventTrigger(stripe_conn_id=conn_for(localstripe), types=["payout.paid"], poll_interval=1)
    stream = trigger.run()
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(1.5)  # the trigger has started (cursor at "now") and polled once
    assert not pending.done()
    fresh = payout(localstripe, "paid")
    try:
        event = await asyncio.wait_for(pending, timeout=10)
    finally:
        await stream.aclose()
    assert event.payload["object_id"] == fresh


@pytest.mark.slow
async def test_failed_polls_back_off_within_bounds_then_resume(fault_proxy, conn_for) -> None:
    proxy = fault_proxy(faults=FaultPlan(rates={FaultKind.SERVER_ERROR: 1.0}, path_prefix="/v1/events"))
    conn_id = conn_for(proxy.url, max_network_retries=0)
    trigger = StripeEventTrigger(
        stripe_conn_id=conn_id, types=["payout.paid"], start_from="oldest", poll_interval=1, max_backoff=2
    )
    stream = trigger.run()
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(6)
    failed = [r for r in proxy.records if r.path.startswith("/v1/events")]
    # Waits are 0.5-1 s, then 1-2 s, then capped at 1-2 s: 3 to 7 attempts in 6 s, not a hot loop.
    assert 3 <= len(failed) <= 7, failed
    assert all(r.fault is FaultKind.SERVER_ERROR for r in failed)
    assert not pending.done()

    proxy.clear_faults()
    paid = payout(proxy.url, "paid")
    try:
        event = await asyncio.wait_for(pending, timeout=10)  # within one capped backoff
    finally:
        await stream.aclose()
    assert event.payload["object_id"] == paid


def test_backoff_is_exponential_and_capped() -> None:
    for failures, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (8, 60), (1000, 60)]:
        delay = backoff_delay(failures, 5, 60)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(0, 5, 60) == 0


def test_cursor_keeps_a_bounded_lookback_of_fired_ids() -> None:
    cursor = EventCursor.starting_at(1000)
    fired = [{"event_id": f"evt_{i}", "created": 1000 + i} for i in range(100)]
    moved = cursor.advance(fired, lookback=10)
    assert moved.high == 1099 and moved.floor == 1089
    assert [i for i, _ in moved.seen] == [f"evt_{i}" for i in range(89, 100)]
    assert not moved.is_new({"event_id": "evt_95", "created": 1095})
    assert moved.is_new({"event_id": "evt_late", "created": 1090})  # listed late, still fired
    assert not moved.is_new({"event_id": "evt_old", "created": 1088})  # before the floor
    assert EventCursor.from_dict(json.loads(json.dumps(moved.to_dict()))) == moved

    burst = [{"event_id": f"evt_b{i}", "created": 2000 + i // 1000} for i in range(MAX_SEEN + 2000)]
    trimmed = moved.advance(burst, lookback=3600)
    assert len(trimmed.seen) <= MAX_SEEN
    assert all(created >= trimmed.floor for _, created in trimmed.seen)


def test_bad_arguments_fail_at_parse_time() -> None:
    with pytest.raises(ValueError, match="types"):
        StripeEventTrigger(types=["Payout Paid"])
    with pytest.raises(ValueError, match="poll_interval"):
        StripeEventTrigger(poll_interval=0.1)
    with pytest.raises(ValueError, match="start_from"):
        StripeEventTrigger(start_from="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cursor"):
        StripeEventTrigger(cursor={"version": 99})


async def test_example_dag_reconciles_what_the_trigger_fired(
    localstripe: str, conn_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dags_examples/stripe_payout_events.py``'s task, fed the trigger's real payloads."""
    import importlib.util
    from types import SimpleNamespace

    from tests.airflow_env import DAGS_FOLDER

    spec = importlib.util.spec_from_file_location("stripe_payout_events", DAGS_FOLDER / "stripe_payout_events.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    conn_id = conn_for(localstripe)
    monkeypatch.setenv(f"AIRFLOW_CONN_{example.STRIPE_CONN_ID.upper()}", os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])

    paid, failed = payout(localstripe, "paid"), payout(localstripe, "failed")
    trigger = StripeEventTrigger(
        stripe_conn_id=conn_id, types=example.PAYOUT_OUTCOMES, start_from="oldest", poll_interval=1
    )
    payloads = await collect(trigger, 2, quiet=0.5)
    asset_events = {"polled": [SimpleNamespace(extra={"from_trigger": True, "payload": p}) for p in payloads]}

    results = await asyncio.to_thread(example.reconcile_payouts.function, triggering_asset_events=asset_events)
    assert {(r["payout_id"], r["status"], r["confirmed"]) for r in results} == {
        (paid, "paid", True),
        (failed, "failed", True),
    }
