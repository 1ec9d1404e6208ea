"""Batch throughput: StripePayoutBatchOperator (8 workers) vs a bare 8-thread pool; rate-limit use.

Both create the same ``N`` payouts through the counting proxy in front of localstripe,
which timestamps every request; throughput is ``N`` over the span from the first to the
last ``POST /v1/payouts`` seen there, so Airflow's start-up and the operator's listing
before it creates anything do not count, and both sides are measured the same way. The
operator runs for real in ``dag.test()`` (:mod:`benchmarks.dag_worker`).

Run twice: on bare loopback (localstripe answers in about 2 ms, so the client's CPU is
the limit) and with 50 ms added to every request by the proxy, closer to a real round trip
to Stripe. The baseline is what a user would write instead, at the same concurrency: a
``ThreadPoolExecutor`` of 8 threads calling ``payouts.create`` with the same items, metadata
and one idempotency key each; the target is a per-payout time within 1.10x of it.

With the rate limit ON (the contract's 1000/min and 20000/h, or 100/min and 2000/h with
``--quick``), a batch of 1.5x the per-minute limit must wait for the moving window:
the proxy's timestamps show whether any 60 s window held more than the limit and how
close to the limit the requests that had to wait came (``limit`` requests per span of
``limit`` requests; 1.0 = the limit used in full).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.counting_proxy import CountingProxy, latency_plan, max_in_window, span, spans_of
from benchmarks.dag_worker import DagRunner
from benchmarks.env import stripe_connection, unlimited_connection
from benchmarks.report import Measurement, median
from benchmarks.request_overhead import quiet_stripe_logger
from benchmarks.workload import dag_env, payout_items

BATCH_DAG = "bench_payout_batch"
WORKERS = 8
LATENCIES_MS = (0, 50)
TARGET_FRACTION = 0.95
POOL_TARGET = 1.10
"""The batch's time per payout may be at most this multiple of the bare pool's."""
WINDOW_S = 60.0


def warm_up_env(proxy: CountingProxy) -> dict[str, str]:
    """A two-payout batch through the proxy: enough to warm up a fresh ``dag.test()`` process."""
    conn_id = "stripe_bench_warm_up"
    return {**unlimited_connection(conn_id, proxy.url), **dag_env(2, conn_id, WORKERS)}


def bare_pool(proxy: CountingProxy, count: int, prefix: str) -> None:
    """The baseline: ``WORKERS`` threads calling ``payouts.create``, same items, metadata and idempotency keys."""
    import stripe

    from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY

    client = stripe.StripeClient(LOCAL_TEST_KEY, base_addresses={"api": proxy.url})

    def create(item: dict[str, Any]) -> None:
        reference = item.pop("reference")
        params: Any = {**item, "metadata": {"airflow_payout_ref": reference}}
        client.v1.payouts.create(params, {"idempotency_key": str(uuid.uuid4())})

    with quiet_stripe_logger(), ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(create, payout_items(count, prefix)))


def payout_creates(proxy: CountingProxy) -> list[float]:
    return [a.at for a in proxy.arrivals("POST", "/v1/payouts")]


def check_run(result: dict[str, Any], what: str) -> None:
    if result["state"] != "success":
        raise RuntimeError(f"{what}: dag.test() ended {result['state']} ({result['task_states']}); see the DAG log")


def concurrency(proxy: CountingProxy, flush: Any, dags: DagRunner, *, quick: bool) -> list[Measurement]:
    count = 100 if quick else 300
    rows = []
    for latency in LATENCIES_MS:
        proxy.set_plan(latency_plan(latency))
        flush()
        proxy.reset()
        bare_pool(proxy, count, f"pool{latency}")
        pooled = payout_creates(proxy)
        flush()
        proxy.reset()
        conn_id = f"stripe_bench_batch_{latency}ms"
        result = dags.run(BATCH_DAG, {**unlimited_connection(conn_id, proxy.url), **dag_env(count, conn_id, WORKERS)})
        check_run(result, "batch throughput run")
        batch = payout_creates(proxy)
        if len(batch) != count or len(pooled) != count:
            raise RuntimeError(f"expected {count} creates each, saw batch={len(batch)} pool={len(pooled)}")
        ours, base = count / span(batch), count / span(pooled)
        rows.append(
            Measurement(
                key=f"batch_throughput_{latency}ms",
                title=f"Batch throughput, {latency} ms added latency",
                ours_label=f"batch operator, {WORKERS} workers",
                ours=ours,
                baseline_label=f"bare {WORKERS}-thread pool",
                baseline=base,
                unit="payouts/s",
                ratio=ours / base,
                ratio_text=f"{ours / base:.2f}x the pool's rate ({base / ours:.2f}x its time per payout)",
                target=f"time per payout <= {POOL_TARGET:.2f}x the pool's",
                met=base / ours <= POOL_TARGET,
                details={
                    "payouts": count,
                    "added_latency_ms": latency,
                    "batch_span_s": span(batch),
                    "pool_span_s": span(pooled),
                    "batch_requests_total": proxy.stats["requests"],
                    "dag_test_seconds": result["seconds"],
                },
            )
        )
    proxy.set_plan(latency_plan(0))
    return rows


def rate_limit(proxy: CountingProxy, flush: Any, dags: DagRunner, *, quick: bool) -> list[Measurement]:
    from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT

    per_minute, per_hour = (100, 2000) if quick else (STRIPE_CONTRACT.rate_limit.rpm, STRIPE_CONTRACT.rate_limit.rph)
    count = per_minute + per_minute // 2
    conn_id = f"stripe_bench_limited_{per_minute}"
    conn = stripe_connection(conn_id, proxy.url, rate_limit_per_minute=per_minute, rate_limit_per_hour=per_hour)
    flush()
    proxy.reset()
    result = dags.run(BATCH_DAG, {**conn, **dag_env(count, conn_id, WORKERS)})
    check_run(result, "rate-limited batch run")
    times = [a.at for a in proxy.arrivals()]
    spans = spans_of(times, per_minute)
    busiest = max_in_window(times, WINDOW_S)
    achieved = per_minute * WINDOW_S / median(spans)
    fraction = achieved / per_minute
    return [
        Measurement(
            key="rate_limit_use",
            title=f"Rate limit ON ({per_minute}/min): requests per minute achieved",
            ours_label=f"batch of {count}, {WORKERS} workers",
            ours=achieved,
            baseline_label="the limit",
            baseline=float(per_minute),
            unit="req/min",
            ratio=fraction,
            ratio_text=f"{fraction:.3f} of the limit; max {busiest} in any 60 s",
            target=f">= {TARGET_FRACTION} of the limit, never > {per_minute} in any 60 s window",
            met=fraction >= TARGET_FRACTION and busiest <= per_minute,
            details={
                "limit_per_minute": per_minute,
                "limit_per_hour": per_hour,
                "payouts": count,
                "requests": len(times),
                "max_requests_in_any_60s_window": busiest,
                "shortest_span_of_limit_plus_one_requests_s": min(spans),
                "median_span_s": median(spans),
                "longest_span_s": max(spans),
                "first_to_last_request_s": times[-1] - times[0],
                "dag_test_seconds": result["seconds"],
                "how": "achieved = limit * 60 s / median span of limit+1 consecutive requests (those that waited)",
            },
        )
    ]
