"""Sensor cost: Stripe requests per poke of StripePayoutSensor waiting for 500 payouts.

The payouts are created on a flushed localstripe; the sensor's connection points at the
counting proxy, which counts what each poke sends. Measured while every payout is still
``pending`` (a poke that goes on waiting), after all were marked ``paid`` (the poke that
succeeds), and for one poll of the deferrable trigger. The baseline is what a user would
write instead, measured through the same proxy: a bare ``StripeClient`` retrieving each
payout (``GET /v1/payouts/{id}``), requests counted and timed like the poke's.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from benchmarks.counting_proxy import CountingProxy
from benchmarks.env import unlimited_connection
from benchmarks.report import Measurement
from benchmarks.request_overhead import quiet_stripe_logger
from benchmarks.workload import payout_items

PAYOUTS = 500
CONN_ID = "stripe_bench_sensor"


def _create_payouts(localstripe_url: str, count: int) -> list[str]:
    import stripe

    from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY

    client = stripe.StripeClient(LOCAL_TEST_KEY, base_addresses={"api": localstripe_url})
    ids = []
    for item in payout_items(count, "sensor"):
        item.pop("reference")
        ids.append(client.v1.payouts.create(item).id)  # type: ignore[arg-type]
    return ids


def _mark_paid(localstripe_url: str, payout_ids: list[str]) -> None:
    """Play the bank: localstripe's payouts stay pending until updated (a call real Stripe refuses)."""
    import requests

    from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY

    with requests.Session() as session:
        for payout_id in payout_ids:
            url = f"{localstripe_url}/v1/payouts/{payout_id}"
            session.post(url, data={"status": "paid"}, auth=(LOCAL_TEST_KEY, ""), timeout=10).raise_for_status()


def _poke(proxy: CountingProxy, payout_ids: list[str]) -> tuple[int, Any]:
    from airflow_provider_stripe.sensors.payouts import StripePayoutSensor

    sensor = StripePayoutSensor(task_id="bench_wait_for_payouts", payout_ids=payout_ids, stripe_conn_id=CONN_ID)
    proxy.reset()
    outcome = sensor.poke({})  # poke mode (no reschedule, no deferral) reads nothing from the context
    return len(proxy.arrivals()), outcome.is_done


def _bare_poll(proxy: CountingProxy, payout_ids: list[str]) -> tuple[int, float]:
    """The baseline poll: one ``payouts.retrieve`` per payout; (requests seen at the proxy, seconds)."""
    import stripe

    from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY

    client = stripe.StripeClient(LOCAL_TEST_KEY, base_addresses={"api": proxy.url})
    proxy.reset()
    started = time.perf_counter()
    for payout_id in payout_ids:
        client.v1.payouts.retrieve(payout_id)
    return len(proxy.arrivals()), time.perf_counter() - started


def _trigger_poll(proxy: CountingProxy, payout_ids: list[str]) -> tuple[int, Any]:
    from airflow_provider_stripe.triggers.payouts import StripePayoutTrigger

    async def first_event() -> Any:
        trigger = StripePayoutTrigger(payout_ids=payout_ids, stripe_conn_id=CONN_ID, poll_interval=1.0)
        async for event in trigger.run():
            return event.payload
        return None

    proxy.reset()
    payload = asyncio.run(first_event())
    return len(proxy.arrivals()), (payload or {}).get("status")


def run(localstripe_url: str, proxy: CountingProxy, flush: Any) -> list[Measurement]:
    import os

    os.environ.update(unlimited_connection(CONN_ID, proxy.url))
    flush()
    with quiet_stripe_logger():
        payout_ids = _create_payouts(localstripe_url, PAYOUTS)
        pending_requests, pending_done = _poke(proxy, payout_ids)
        _mark_paid(localstripe_url, payout_ids)
        started = time.perf_counter()
        paid_requests, paid_done = _poke(proxy, payout_ids)
        poke_seconds = time.perf_counter() - started
        bare_requests, bare_seconds = _bare_poll(proxy, payout_ids)
        trigger_requests, trigger_status = _trigger_poll(proxy, payout_ids)
    target = math.ceil(PAYOUTS / 100)
    worst = max(pending_requests, paid_requests, trigger_requests)
    return [
        Measurement(
            key="sensor_requests_per_poke",
            title=f"Sensor: Stripe requests per poke, {PAYOUTS} payouts",
            ours_label="StripePayoutSensor",
            ours=float(worst),
            baseline_label="bare StripeClient, one retrieve per payout",
            baseline=float(bare_requests),
            unit="requests",
            ratio=worst / bare_requests,
            ratio_text=f"{worst / bare_requests:.3f}x ({worst} vs {bare_requests}; {poke_seconds:.2f} s vs "
            f"{bare_seconds:.2f} s)",
            target=f"{target} requests (ceil({PAYOUTS}/100))",
            met=worst <= target,
            details={
                "poke_while_pending": {"requests": pending_requests, "done": pending_done},
                "poke_when_all_paid": {"requests": paid_requests, "done": paid_done},
                "trigger_first_poll": {"requests": trigger_requests, "event": trigger_status},
                "bare_poll": {"requests": bare_requests, "seconds": bare_seconds},
                "poke_when_all_paid_seconds": poke_seconds,
                "note": "listed newest first (Stripe's order, through the front); the server held only these payouts",
            },
        )
    ]
