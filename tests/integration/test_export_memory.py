"""Exports stream: peak memory does not grow with the number of objects exported."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.operators.exports import StripeExportOperator
from tests.airflow_env import rate_limit_caps_env
from tests.integration.stripe_task_context import stripe_connection, task_context
from tests.servers.stub_stripe import RecordedRequest, StubResponse, StubServer

WINDOW = (1_700_000_000, 1_700_100_000)


def _charges_api(total: int):
    """A Stripe-shaped ``GET /v1/charges``: ``total`` charges, newest first, paged by ``starting_after``."""

    def charge(n: int) -> dict[str, Any]:
        return {
            "id": f"ch_{n:08d}",
            "object": "charge",
            "amount": 1000 + n,
            "currency": "eur",
            "created": WINDOW[1] - 1 - n,
            "status": "succeeded",
            "description": "x" * 200,
            "metadata": {"order": str(n)},
        }

    def respond(req: RecordedRequest) -> StubResponse | None:
        if req.path != "/v1/charges":
            return None
        limit = int(req.query.get("limit", ["10"])[0])
        after = req.query.get("starting_after", [None])[0]
        # created = WINDOW[1] - 1 - n: the window [gte, lt) holds n in [WINDOW[1] - lt, WINDOW[1] - gte)
        first = max(0, WINDOW[1] - int(req.query["created[lt]"][0]))
        end = min(total, WINDOW[1] - int(req.query["created[gte]"][0]))
        start = int(after.split("_")[1]) + 1 if after else first
        page = [charge(n) for n in range(start, min(start + limit, end))]
        body = {"object": "list", "url": "/v1/charges", "has_more": start + limit < end, "data": page}
        return StubResponse(200, body)

    return respond


def _export_peak(stub: StubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, total: int) -> tuple[int, int]:
    stub.clear()
    stub.responder = _charges_api(total)
    for name, value in rate_limit_caps_env(100_000, 1_000_000).items():
        monkeypatch.setenv(name, value)
    conn = stripe_connection(monkeypatch, stub.url, rate_limit_per_minute=100_000, rate_limit_per_hour=1_000_000)
    target = tmp_path / f"charges-{total}.jsonl"
    op = StripeExportOperator(
        resource="charges",
        task_id="export",
        stripe_conn_id=conn,
        path=str(target),
        created_gte=WINDOW[0],
        created_lt=WINDOW[1],
    )
    op.hook.get_client()  # connection parsing and client set-up are not part of the streaming
    tracemalloc.start()
    try:
        result = op.execute(task_context())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with target.open() as handle:
        assert sum(1 for _ in handle) == total == result["count"]
        handle.seek(0)
        assert json.loads(handle.readline())["id"] == "ch_00000000"
    return peak, len(stub.requests_to("/v1/charges"))


def test_export_memory_is_flat_in_the_number_of_objects(
    stub_stripe: StubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, report: Callable[[str], None]
) -> None:
    _export_peak(stub_stripe, monkeypatch, tmp_path, 10)  # warm-up: first-call imports are not streaming
    small_peak, small_pages = _export_peak(stub_stripe, monkeypatch, tmp_path, 300)
    large_peak, large_pages = _export_peak(stub_stripe, monkeypatch, tmp_path, 3000)
    # A first page of the window, then its time slices (the charges fill the newest 3,000 s of it).
    assert small_pages >= 3 and large_pages >= 30
    # Ten times the objects, at most a page's worth more memory (one page is ~100 objects).
    assert large_peak < small_peak * 1.5 + 256 * 1024, (small_peak, large_peak)
    report(f"export: peak {small_peak / 1024:.0f} KiB for 300 charges, {large_peak / 1024:.0f} KiB for 3000")
