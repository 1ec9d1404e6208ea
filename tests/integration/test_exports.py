"""Export operators against a real localstripe behind the Stripe-faithful front.

* N charges / payouts are streamed across several pages into JSON Lines;
* a ``created`` window excludes objects outside it: every page is asked with Stripe's
  ``created[gte]``/``created[lt]`` (asserted from the front's request log);
* the window defaults to the run's data interval; an empty window is refused;
* object storage paths work through Airflow's ``ObjectStoragePath``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.operators.exports import StripeExportOperator
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection, task_context
from tests.servers.fault_proxy import FaultProxy
from tests.servers.localstripe_server import request_log

pytestmark = pytest.mark.timeout(60)


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": url})


def _charge(client: stripe.StripeClient, amount: int) -> Any:
    return client.v1.charges.create({"amount": amount, "currency": "eur", "source": "pm_card_visa"})


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _window_queries(url: str, path: str) -> list[dict[str, str]]:
    """The query of every list request the front received for ``path``."""
    return [r.params for r in request_log(url) if r.method == "GET" and r.path == path]


def _wait_next_second(after: int) -> None:
    """localstripe's ``created`` has 1 s resolution: make the next object strictly newer."""
    while int(time.time()) <= after:
        time.sleep(0.05)


def test_charges_export_streams_every_page(
    fault_proxy: Callable[..., FaultProxy], localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = _client(localstripe)
    ids = [_charge(client, 1000 + i).id for i in range(5)]
    proxy = fault_proxy()
    conn = stripe_connection(monkeypatch, proxy.url)
    now = int(time.time())
    target = tmp_path / "charges" / "day.jsonl"
    op = StripeExportOperator(
        resource="charges",
        task_id="export",
        stripe_conn_id=conn,
        path=str(target),
        created_gte=now - 3600,
        created_lt=now + 3600,
        page_size=2,
        max_workers=1,  # one listing, paged (each time slice of a parallel export pages the same way)
    )
    result = op.execute(task_context())
    assert result["path"] == str(target)
    assert result["count"] == 5
    rows = _read(target)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert all(r["object"] == "charge" and r["currency"] == "eur" for r in rows)
    assert not list(target.parent.glob("*.part"))  # written under a temporary name, then renamed
    pages = [r for r in proxy.records if r.method == "GET" and r.path == "/v1/charges" and r.status == 200]
    assert len(pages) == 3  # 2 + 2 + 1, each streamed to the file as it arrived


def test_window_excludes_objects_outside_it(localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    client = _client(localstripe)
    before = _charge(client, 1100)
    _wait_next_second(before.created)
    inside = [_charge(client, 1200), _charge(client, 1300)]
    _wait_next_second(max(c.created for c in inside))
    after = _charge(client, 1400)
    assert before.created < inside[0].created <= inside[1].created < after.created

    conn = stripe_connection(monkeypatch, localstripe)
    start = datetime.fromtimestamp(inside[0].created, timezone.utc)
    end = datetime.fromtimestamp(after.created, timezone.utc)
    # The default window is the run's data interval.
    ctx = task_context(data_interval_start=start, data_interval_end=end)
    result = StripeExportOperator(
        resource="charges", task_id="e", stripe_conn_id=conn, path=str(tmp_path / "c.jsonl")
    ).execute(ctx)
    assert result["count"] == 2
    assert sorted(r["id"] for r in _read(tmp_path / "c.jsonl")) == sorted(c.id for c in inside)
    assert (result["created_gte"], result["created_lt"]) == (inside[0].created, after.created)
    (query,) = _window_queries(localstripe, "/v1/charges")
    assert (query["created[gte]"], query["created[lt]"]) == (str(inside[0].created), str(after.created))

    # Overrides win over the data interval; ISO strings (rendered templates) are accepted.
    result = StripeExportOperator(
        resource="charges",
        task_id="e",
        stripe_conn_id=conn,
        path=str(tmp_path / "all.jsonl"),
        created_gte=start.replace(second=0) - timedelta(minutes=1),
        created_lt=(end + timedelta(seconds=1)).isoformat(),
    ).execute(ctx)
    assert result["count"] == 4


def test_payouts_export_pages_through_the_created_window(
    localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = _client(localstripe)
    payouts = [client.v1.payouts.create({"amount": 500 * (i + 1), "currency": "eur"}) for i in range(3)]
    conn = stripe_connection(monkeypatch, localstripe)
    now = int(time.time())
    result = StripeExportOperator(
        resource="payouts",
        task_id="p",
        stripe_conn_id=conn,
        path=str(tmp_path / "payouts.jsonl"),
        created_gte=now - 60,
        created_lt=now + 60,
        page_size=2,
        max_workers=1,  # one listing, paged (each time slice of a parallel export pages the same way)
    ).execute(task_context())
    assert result["count"] == 3
    rows = _read(tmp_path / "payouts.jsonl")
    assert [r["id"] for r in rows] == [p.id for p in reversed(payouts)]  # Stripe lists newest first
    assert {r["object"] for r in rows} == {"payout"}
    queries = _window_queries(localstripe, "/v1/payouts")
    assert [q.get("starting_after") for q in queries] == [None, rows[1]["id"]]  # 2 + 1
    assert all(
        (q["created[gte]"], q["created[lt]"], q["limit"]) == (str(now - 60), str(now + 60), "2") for q in queries
    )


def test_bad_window_or_path_sends_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conn = stripe_connection(monkeypatch, "http://127.0.0.1:9")  # nothing listens: any request would fail
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({}, {}, "created_gte"),  # unscheduled manual run: no data interval
        ({}, {"data_interval_start": now, "data_interval_end": now}, "created_lt"),  # trigger timetable
        ({"created_gte": "yesterday-ish", "created_lt": now}, {}, "created_gte"),
        ({"created_gte": now, "created_lt": now, "path": ""}, {}, "created_lt"),
        ({"created_gte": now - timedelta(days=1), "created_lt": now, "path": ""}, {}, "path"),
        ({"created_gte": now - timedelta(days=1), "created_lt": now, "page_size": 500}, {}, "page_size"),
        (
            {"created_gte": now - timedelta(days=1), "created_lt": now, "list_params": {"created[gt]": 1}},
            {},
            "list_params",
        ),
    ]
    for kwargs, ctx, field in cases:
        op = StripeExportOperator(
            resource="charges", task_id="e", stripe_conn_id=conn, **{"path": str(tmp_path / "x.jsonl"), **kwargs}
        )
        with pytest.raises(StripeInputError) as info:
            op.execute(task_context(**ctx))
        assert info.value.field == field, kwargs
    assert not (tmp_path / "x.jsonl").exists()


def test_object_storage_path(localstripe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.io import fs as airflow_fs
    from fsspec.implementations.memory import MemoryFileSystem

    # Register fsspec's in-memory filesystem the way a provider registers s3:// or gs://.
    memory = MemoryFileSystem()
    monkeypatch.setitem(airflow_fs._register_filesystems(), "memory", lambda conn_id: memory)
    client = _client(localstripe)
    ids = {_charge(client, 2000).id, _charge(client, 2100).id}
    conn = stripe_connection(monkeypatch, localstripe)
    now = int(time.time())
    result = StripeExportOperator(
        resource="charges",
        task_id="e",
        stripe_conn_id=conn,
        path="memory://exports/charges.jsonl",
        created_gte=now - 60,
        created_lt=now + 60,
    ).execute(task_context())
    from airflow.sdk import ObjectStoragePath

    assert result == {
        # universal_pathlib 0.2 (Airflow 3.1) renders it memory:///exports/..., 0.3 memory://exports/...
        "path": str(ObjectStoragePath("memory://exports/charges.jsonl")),
        "count": 2,
        "created_gte": now - 60,
        "created_lt": now + 60,
        "account_id": None,
    }
    lines = memory.cat_file("/exports/charges.jsonl").decode().splitlines()
    assert {json.loads(line)["id"] for line in lines} == ids
    assert not memory.exists("/exports/.charges.jsonl.part")


BAD_ACCOUNTS = ["../../x", "acct_1A/../../x", "acct_1A\r\nX-Injected: 1", "acct_", "cus_123", "acct_1A ", ""]
"""Account ids from run conf or a mapped list that must never reach a path or a header."""


def _rendered_export(conn: str, template: str, **fields: Any) -> StripeExportOperator:
    """An export whose templates are rendered the way Airflow renders them (``task`` in the context)."""
    op = StripeExportOperator(
        resource="charges", task_id="e", stripe_conn_id=conn, path=template, created_gte=1, created_lt=2, **fields
    )
    op.render_template_fields({**task_context(), "task": op, "params": fields.pop("params", {})})
    return op


@pytest.mark.parametrize("account", [a for a in BAD_ACCOUNTS if a])
def test_a_bad_account_id_creates_nothing_and_sends_nothing(
    account: str, fault_proxy: Callable[..., FaultProxy], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``accounts=["../../x"]`` in run conf used to write outside the warehouse (folders made before any call)."""
    proxy = fault_proxy()
    conn = stripe_connection(monkeypatch, proxy.url)
    warehouse = tmp_path / "warehouse"
    op = _rendered_export(conn, f"{warehouse}/{{{{ task.account_id }}}}/charges.jsonl", account_id=account)
    with pytest.raises(StripeInputError) as info:
        op.execute(task_context())
    assert info.value.field == "account_id"
    assert list(tmp_path.iterdir()) == []  # not even the warehouse folder
    assert proxy.records == []


def test_a_rendered_path_may_not_climb_out_of_its_folder(
    fault_proxy: Callable[..., FaultProxy], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    proxy = fault_proxy()
    conn = stripe_connection(monkeypatch, proxy.url)
    warehouse = tmp_path / "warehouse"
    template = f"{warehouse}/{{{{ params.day }}}}/charges.jsonl"
    op = _rendered_export(conn, template, params={"day": "../../escaped"})
    with pytest.raises(StripeInputError, match="climbs out of its folder") as info:
        op.execute(task_context())
    assert info.value.field == "path"
    assert list(tmp_path.iterdir()) == [] and proxy.records == []
    # A '..' the DAG itself wrote is its own choice.
    mine = _rendered_export(conn, f"{warehouse}/sub/../{{{{ params.day }}}}.jsonl", params={"day": "d1"})
    assert mine.execute(task_context())["count"] == 0


@pytest.mark.parametrize("account", BAD_ACCOUNTS[:3])
def test_the_hook_refuses_a_bad_account_before_any_request(
    account: str, fault_proxy: Callable[..., FaultProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook or per-call override used to be sent as Stripe-Account as is (CRLF stopped only by requests)."""
    from airflow_provider_stripe.hooks.stripe import StripeHook

    proxy = fault_proxy()
    conn = stripe_connection(monkeypatch, proxy.url)
    with pytest.raises(StripeInputError) as info:
        StripeHook(conn, account_id=account)
    assert info.value.field == "account_id"
    with pytest.raises(StripeInputError):
        StripeHook(conn).get_client(account_id=account)
    assert proxy.records == []
    assert StripeHook(conn, account_id="acct_1Good").get_client().v1.balance.retrieve() is not None
    assert [r.path for r in proxy.records] == ["/v1/balance"]
