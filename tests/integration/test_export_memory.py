"""Exports stream: peak memory does not grow with the number of objects, against the local Stripe.

10,000 payouts are written straight into localstripe (its store in memory only: the session's
child process never pickles it to ``/tmp/localstripe.pickle``), then exported through the front,
as users run it. Measured: the tracemalloc peak of ``execute`` in this process -- what the export
path allocates (pages, rows, the writer). Peak RSS would mix in this pytest process's earlier
allocations and never falls (``ru_maxrss`` is a high-water mark), so it could not compare two
exports in one run.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from airflow_provider_stripe.operators.exports import StripeExportOperator
from tests.airflow_env import rate_limit_caps_env
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection, task_context

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def create_payouts(upstream_url: str, count: int, workers: int = 8) -> None:
    """``count`` payouts created in localstripe itself, ``workers`` requests at a time."""
    local = threading.local()

    def create(n: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.auth = (TEST_KEY, "")
        form = {"amount": 1000 + n, "currency": "eur", "description": "x" * 200, "metadata[order]": str(n)}
        local.session.post(f"{upstream_url}/v1/payouts", data=form, timeout=30).raise_for_status()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, range(count)))


def export_peak(conn: str, tmp_path: Path, since: int) -> tuple[int, int]:
    """``(tracemalloc peak in bytes, rows)`` of one export of the payouts created since ``since``."""
    target = tmp_path / f"payouts-{time.monotonic_ns()}.jsonl"
    op = StripeExportOperator(
        resource="payouts",
        task_id="export",
        stripe_conn_id=conn,
        path=str(target),
        created_gte=since,
        created_lt=int(time.time()) + 1,
        max_workers=1,  # one listing: the front reads all of localstripe's list at each slice's first page
    )
    op.hook.get_client()  # connection parsing and client set-up are not part of the streaming
    gc.collect()
    tracemalloc.start()
    try:
        result = op.execute(task_context())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with target.open() as handle:
        rows = sum(1 for _ in handle)
        handle.seek(0)
        assert json.loads(handle.readline())["object"] == "payout"
    assert rows == result["count"]
    return peak, rows


@pytest.mark.slow
@pytest.mark.scale
def test_export_memory_is_flat_in_the_number_of_objects(
    localstripe: str,
    localstripe_upstream: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    report: Callable[[str], None],
) -> None:
    for name, value in rate_limit_caps_env(100_000, 1_000_000).items():
        monkeypatch.setenv(name, value)
    conn = stripe_connection(monkeypatch, localstripe, rate_limit_per_minute=100_000, rate_limit_per_hour=1_000_000)
    since = int(time.time()) - 1
    create_payouts(localstripe_upstream, 10)
    export_peak(conn, tmp_path, since)  # warm-up: first-call imports are not streaming
    started = time.perf_counter()
    create_payouts(localstripe_upstream, 990)
    small_peak, small_rows = export_peak(conn, tmp_path, since)
    create_payouts(localstripe_upstream, 9_000)
    large_peak, large_rows = export_peak(conn, tmp_path, since)
    assert (small_rows, large_rows) == (1_000, 10_000)
    # Ten times the objects, about the same peak: at most half again, plus a few pages (~100 objects each).
    assert large_peak < small_peak * 1.5 + 512 * 1024, (small_peak, large_peak)
    report(
        f"export against localstripe: tracemalloc peak {small_peak / 1024:.0f} KiB for 1,000 payouts, "
        f"{large_peak / 1024:.0f} KiB for 10,000 ({time.perf_counter() - started:.0f} s with creating them)"
    )
