"""Per-request overhead: a payout created through ``StripeHook.get_client()`` vs a bare ``StripeClient``.

Both create the same payouts against the same localstripe, directly (no proxy). The
hook's client adds the connection's validated settings, ``Stripe-Version``, its HTTP
client subclass (429 retry rule) and a rate-limiter slot per request; the rate limits
are lifted so only the cost of taking a slot is measured, never a wait. A third client,
the hook's without its limiter, is interleaved too, to attribute the overhead. Calls are
interleaved one by one in a seeded random order after a warm-up, so a noisy neighbour
slows both alike; the ratio is of the per-request medians.

The SDK's own INFO log lines (two per request once Airflow has configured logging) are
silenced for both clients: they are the same for both and only add noise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.env import unlimited_connection
from benchmarks.report import Measurement, median, trimmed_mean
from benchmarks.workload import CURRENCY

TARGET_RATIO = 1.10
CONN_ID = "stripe_bench_overhead"


QUIET_LOGGERS = ("stripe", "airflow.task", "airflow_provider_stripe")
"""The SDK's per-request lines and the operators' and sensor's INFO lines, when run in this process."""


@contextlib.contextmanager
def quiet_stripe_logger() -> Iterator[None]:
    """Raise :data:`QUIET_LOGGERS` to WARNING for the block (their INFO lines only add noise and time)."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run(localstripe_url: str, *, quick: bool) -> list[Measurement]:
    import stripe

    from airflow_provider_stripe.hooks.stripe import StripeHook
    from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY

    os.environ.update(unlimited_connection(CONN_ID, localstripe_url))
    hook = StripeHook(CONN_ID)
    clients = {
        "hook": hook.get_client(),
        "bare": stripe.StripeClient(LOCAL_TEST_KEY, base_addresses={"api": localstripe_url}),
        # Attribution only: the hook's client without its rate limiter.
        "hook_without_limiter": hook.get_client(rate_limited=False),
    }
    params: Any = {"amount": 100, "currency": CURRENCY}
    calls = {name: (lambda c=client: c.v1.payouts.create(params)) for name, client in clients.items()}
    warmup, pairs = (30, 150) if quick else (50, 500)
    times: dict[str, list[float]] = {name: [] for name in calls}
    order = random.Random(0)
    with quiet_stripe_logger():
        for _ in range(warmup):
            for call in calls.values():
                call()
        for _ in range(pairs):
            names = list(calls)
            order.shuffle(names)
            for name in names:
                times[name].append(_timed(calls[name]) * 1000)
    med = {name: median(v) for name, v in times.items()}
    ratio = med["hook"] / med["bare"]
    details = {
        "requests_each": pairs,
        "warmup_each": warmup,
        "median_ms": med,
        "trimmed_mean_ms": {name: trimmed_mean(v) for name, v in times.items()},
        "trimmed_mean_ratio": trimmed_mean(times["hook"]) / trimmed_mean(times["bare"]),
        "hook_without_limiter_ratio": med["hook_without_limiter"] / med["bare"],
        "overhead_us_per_request": (med["hook"] - med["bare"]) * 1000,
        "server": "localstripe on 127.0.0.1, no proxy; rate limits lifted (no waits)",
    }
    return [
        Measurement(
            key="request_overhead",
            title="Per-request overhead (payouts.create)",
            ours_label="StripeHook client",
            ours=med["hook"],
            baseline_label="bare StripeClient",
            baseline=med["bare"],
            unit="ms/request",
            ratio=ratio,
            ratio_text=f"{ratio:.3f}x",
            target=f"<= {TARGET_RATIO:.2f}x",
            met=ratio <= TARGET_RATIO,
            details=details,
        )
    ]
