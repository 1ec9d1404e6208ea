"""Parallel, time-sliced exports: the same file as a sequential read, resumable per slice.

The objects live in the package's Stripe-faithful front (its list semantics: newest first,
``created[gte]``/``[lt]``, cursors), joining localstripe's (flushed: empty) list, behind the
fault proxy that counts every request with its query and fails the requests of one slice
on demand. Thousands of charges, with dense bursts in the seconds on both sides of every
slice edge, so an off-by-one bound would lose or duplicate dozens of rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_stripe.errors import StripeRequestError
from airflow_provider_stripe.exports.slices import SLICES_PER_WORKER, plan_slices
from airflow_provider_stripe.operators.exports import StripeExportOperator
from airflow_provider_stripe.testing.front import Route, StripeFront, list_endpoint, list_spec, with_routes
from tests.airflow_env import rate_limit_caps_env
from tests.integration.stripe_task_context import stripe_connection, task_context
from tests.servers.fault_proxy import FaultKind, FaultPlan, FaultProxy, run_fault_proxy
from tests.servers.stripe_reporting import serve_front

pytestmark = pytest.mark.timeout(120)

WORKERS = 8
T0 = (int(time.time()) // 86_400 - 1) * 86_400  # yesterday 00:00 UTC: within events' 30 days
WINDOW = (T0, T0 + 320)
CUT = WINDOW[1] - 19
"""The newest 20 s hold 5 charges each: the first page (100) ends in second CUT - 1, so it is
kept as the newest slice [CUT, lt) and the slices read the seconds before (CUT - 1 again)."""
SLICES = [(CUT, WINDOW[1]), *plan_slices(WINDOW[0], CUT, WORKERS * SLICES_PER_WORKER)]
EDGES = sorted({gte for gte, _ in SLICES} - {WINDOW[0], CUT})
BURST = 45
"""Charges created in each second on either side of a slice edge (5 in every other second)."""


def _charges() -> list[dict[str, Any]]:
    """Oldest first, as the front's held objects: 5 per second, ``BURST`` more beside each edge."""
    out: list[dict[str, Any]] = []
    for second in range(*WINDOW):
        dense = second in EDGES or second + 1 in EDGES or second + 1 == CUT
        for _ in range(5 + (BURST if dense else 0)):
            n = len(out)
            out.append(
                {
                    "id": f"ch_slice{n:06d}",
                    "object": "charge",
                    "amount": 100 + n,
                    "currency": "eur",
                    "created": second,
                    "status": "succeeded",
                    "metadata": {"n": str(n)},
                }
            )
    return out


def _events(charges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first: every 3rd charge changed 3 times, 7 s apart (often across a slice edge)."""
    out: list[dict[str, Any]] = []
    for charge in charges[::3]:
        for version in range(3):
            created = charge["created"] + 7 * version
            if created >= WINDOW[1]:
                continue
            state = {**charge, "metadata": {**charge["metadata"], "version": str(version)}}
            out.append(
                {
                    "id": f"evt_{charge['id']}_{version}",
                    "object": "event",
                    "type": "charge.updated",
                    "created": created,
                    "data": {"object": state},
                }
            )
    out.sort(key=lambda e: e["created"])  # stable: within a second, in the order generated
    return out


CHARGES = _charges()
EVENTS = _events(CHARGES)


@pytest.fixture
def proxy(localstripe_upstream: str) -> Iterator[FaultProxy]:
    """The front holding the charges and events, behind the fault proxy."""
    routes = with_routes(
        Route("GET", "/v1/charges", list_endpoint(list_spec("charges"), held=lambda: CHARGES)),
        Route("GET", "/v1/events", list_endpoint(list_spec("events"), held=lambda: EVENTS)),
    )
    with serve_front(StripeFront(localstripe_upstream, routes=routes)) as url, run_fault_proxy(url) as running:
        yield running


def _export(conn: str, path: Path | str, window: tuple[int, int] = WINDOW, **kwargs: Any) -> dict[str, Any]:
    op = StripeExportOperator(
        task_id="export",
        stripe_conn_id=conn,
        resource="charges",
        path=str(path),
        created_gte=window[0],
        created_lt=window[1],
        **kwargs,
    )
    result: dict[str, Any] = op.execute(task_context())
    return result


def _lists(proxy: FaultProxy, path: str = "/v1/charges") -> list[dict[str, str]]:
    return [r.params for r in proxy.records if r.method == "GET" and r.path == path]


def _conn(monkeypatch: pytest.MonkeyPatch, proxy: FaultProxy) -> str:
    # Lifted rate limit: the test is about the slices, not the limiter; no SDK retries: a fault fails.
    for name, value in rate_limit_caps_env(100_000, 1_000_000).items():
        monkeypatch.setenv(name, value)
    return stripe_connection(
        monkeypatch, proxy.url, rate_limit_per_minute=100_000, rate_limit_per_hour=1_000_000, max_network_retries=0
    )


def test_parallel_file_equals_the_sequential_one(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = _conn(monkeypatch, proxy)
    assert len(CHARGES) > 4_000 and len(EDGES) == len(SLICES) - 2 == 31
    for fmt in ("jsonl", "csv"):
        sequential, parallel = tmp_path / f"sequential.{fmt}", tmp_path / f"parallel.{fmt}"
        _export(conn, sequential, file_format=fmt, max_workers=1)
        proxy.reset_stats()
        result = _export(conn, parallel, file_format=fmt, max_workers=WORKERS)
        assert result["count"] == len(CHARGES)
        assert parallel.read_bytes() == sequential.read_bytes()
        queries = _lists(proxy)
        first, slice_pages = queries[0], queries[1:]
        assert (first["created[gte]"], first["created[lt]"]) == tuple(map(str, WINDOW))
        asked = {(int(q["created[gte]"]), int(q["created[lt]"])) for q in slice_pages}
        assert asked == set(SLICES[1:])  # every slice but the first page's, integer bounds, none outside the plan
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # spool and part files gone
    # Stripe's order: newest first; within one second, the later-created first.
    newest_first = sorted(reversed(CHARGES), key=lambda c: c["created"], reverse=True)
    lines = (tmp_path / "parallel.jsonl").read_text().splitlines()
    assert [line.split('"id":"')[1].split('"')[0] for line in lines] == [c["id"] for c in newest_first]


def test_small_export_is_one_request(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conn = _conn(monkeypatch, proxy)
    window = (WINDOW[1] - 8, WINDOW[1])  # 8 s of 5 charges (no burst in the newest 20 s): 40, under one page
    result = _export(conn, tmp_path / "small.jsonl", window=window, max_workers=WORKERS)
    assert result["count"] == 40
    assert len(_lists(proxy)) == 1


def test_crash_then_retry_reads_only_the_unfinished_slices(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = _conn(monkeypatch, proxy)
    _export(conn, tmp_path / "sequential.jsonl", max_workers=1)
    oldest = SLICES[-1]  # the last slice started: every other one is under way or done when it fails
    proxy.set_plan(FaultPlan(rates={FaultKind.SERVER_ERROR: 1.0}, query={"created[lt]": str(oldest[1])}))
    proxy.reset_stats()
    target = tmp_path / "parallel.jsonl"
    with pytest.raises(StripeRequestError, match="http_status=500"):
        _export(conn, target, max_workers=WORKERS)
    assert not target.exists()
    (spool,) = [p for p in tmp_path.iterdir() if p.name.startswith(".parallel.jsonl.slices-")]
    kept = {tuple(map(int, p.stem.split("-"))) for p in spool.iterdir() if not p.name.startswith(".")}
    assert kept == set(SLICES) - {oldest}
    assert not [p for p in spool.iterdir() if p.name.startswith(".")]  # the failed slice left no part file

    proxy.clear_faults()
    proxy.reset_stats()
    result = _export(conn, target, max_workers=WORKERS)  # the retry
    assert result["count"] == len(CHARGES)
    asked = [(int(q["created[gte]"]), int(q["created[lt]"])) for q in _lists(proxy)]
    assert set(asked) == {oldest}  # no first page of the window, no finished slice read again
    assert target.read_bytes() == (tmp_path / "sequential.jsonl").read_bytes()
    assert not spool.exists()


def test_changes_mode_parallel_equals_sequential(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = _conn(monkeypatch, proxy)
    sequential, parallel = tmp_path / "sequential.jsonl", tmp_path / "parallel.jsonl"
    _export(conn, sequential, mode="changes", max_workers=1)
    proxy.reset_stats()
    result = _export(conn, parallel, mode="changes", max_workers=WORKERS)
    assert parallel.read_bytes() == sequential.read_bytes()
    changed = {e["data"]["object"]["id"] for e in EVENTS}
    assert result["count"] == len(changed)
    latest = {}
    for event in EVENTS:  # oldest first: the last one seen is the latest
        latest[event["data"]["object"]["id"]] = event["data"]["object"]["metadata"]["version"]
    rows = [json.loads(line) for line in parallel.read_text().splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)
    assert {r["id"]: r["metadata"]["version"] for r in rows} == latest
    asked = {(int(q["created[gte]"]), int(q["created[lt]"])) for q in _lists(proxy, "/v1/events")[1:]}
    cut = sorted(reversed(EVENTS), key=lambda e: e["created"], reverse=True)[99]["created"] + 1
    assert asked == set(plan_slices(WINDOW[0], cut, WORKERS * SLICES_PER_WORKER))  # the first page: [cut, lt)


def test_object_storage_target_is_sliced_and_resumable_the_same_way(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.sdk.io import fs as airflow_fs
    from fsspec.implementations.memory import MemoryFileSystem

    memory = MemoryFileSystem()
    monkeypatch.setitem(airflow_fs._register_filesystems(), "memory", lambda conn_id: memory)
    conn = _conn(monkeypatch, proxy)
    _export(conn, tmp_path / "sequential.jsonl", max_workers=1)
    oldest = SLICES[-1]
    proxy.set_plan(FaultPlan(rates={FaultKind.SERVER_ERROR: 1.0}, query={"created[lt]": str(oldest[1])}))
    with pytest.raises(StripeRequestError):
        _export(conn, "memory://exports/charges.jsonl", max_workers=WORKERS)
    assert any(".charges.jsonl.slices-" in p for p in memory.find("/exports"))
    proxy.clear_faults()
    proxy.reset_stats()
    _export(conn, "memory://exports/charges.jsonl", max_workers=WORKERS)
    assert {(int(q["created[gte]"]), int(q["created[lt]"])) for q in _lists(proxy)} == {oldest}
    assert memory.cat_file("/exports/charges.jsonl") == (tmp_path / "sequential.jsonl").read_bytes()
    assert memory.find("/exports") == ["/exports/charges.jsonl"]  # the spool is gone
