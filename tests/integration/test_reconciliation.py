"""Payout reconciliation against localstripe behind the ledger front (tests/servers/stripe_reporting.py).

* an automatic payout's balance transactions are listed page by page (``ceil(n / 100)``
  requests), one row each with the payout id, amounts, fee, net and reporting category;
* a manual payout (localstripe's, as the batch operator creates them) is one row saying so;
* a payout Stripe failed after it was paid is marked (``payout_status``, ``failed_payouts``);
* ``expand_source`` expands real localstripe charges;
* without ids, the payouts that arrived in the window are reconciled;
* an unknown payout fails the task naming it, and leaves no file.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.errors import StripeRequestError
from airflow_provider_stripe.operators.reconciliation import (
    MANUAL_PAYOUT_NOTE,
    RECONCILIATION_COLUMNS,
    StripePayoutReconciliationOperator,
)
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection, task_context
from tests.servers.stripe_reporting import LedgerFront

pytestmark = pytest.mark.timeout(120)


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _items(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"type": "charge", "amount": 1000 + i, "fee": 59 + i % 7, "source": f"ch_synthetic{i:05d}", **extra}
        for i in range(n)
    ]


def _requests(ledger_front: LedgerFront, path: str) -> int:
    return sum(1 for r in ledger_front.records if r.method == "GET" and r.path == path)


def test_automatic_and_manual_payouts_by_id(
    ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, report: Any
) -> None:
    items = [*_items(249), {"type": "refund", "amount": -500, "reporting_category": "refund", "source": "re_x1"}]
    automatic = ledger_front.ledger.add_automatic_payout(items)
    manual = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe}).v1.payouts.create(
        {"amount": 7000, "currency": "eur"}
    )
    conn = stripe_connection(monkeypatch, ledger_front.url)
    target = tmp_path / "recon" / "day.jsonl"
    # The batch operator's result shape: per-item results carrying payout_id.
    batch_output = {"summary": {}, "results": [{"payout_id": automatic["id"]}, {"payout_id": manual.id}]}
    ledger_front.reset_stats()
    result = StripePayoutReconciliationOperator(
        task_id="recon", stripe_conn_id=conn, path=str(target), payout_ids=batch_output
    ).execute(task_context())

    rows = _read(target)
    assert result == {
        "path": str(target),
        "count": 252,
        "payouts": 2,
        "manual_payouts": [manual.id],
        "failed_payouts": [],
        "account_id": None,
    }
    assert all(set(r) == {name for name, _ in RECONCILIATION_COLUMNS} for r in rows)
    auto_rows = [r for r in rows if r["payout_id"] == automatic["id"]]
    assert len(auto_rows) == 251  # 250 items + the payout's own transaction
    assert {r["balance_transaction_id"] for r in auto_rows} == {
        t["id"] for t in ledger_front.ledger.transactions[automatic["id"]]
    }
    assert sum(r["net"] for r in auto_rows) == 0  # the payout settles exactly what it contains
    first = next(r for r in auto_rows if r["source_id"] == "ch_synthetic00003")
    assert (first["amount"], first["fee"], first["net"], first["reporting_category"]) == (1003, 62, 941, "charge")
    refund = next(r for r in auto_rows if r["type"] == "refund")
    assert (refund["amount"], refund["net"], refund["reporting_category"]) == (-500, -500, "refund")
    payout_row = next(r for r in auto_rows if r["type"] == "payout")
    assert payout_row["amount"] == -automatic["amount"] and payout_row["itemized"] is True

    (manual_row,) = [r for r in rows if r["payout_id"] == manual.id]
    assert manual_row["itemized"] is False and manual_row["payout_type"] == "manual"
    assert (manual_row["amount"], manual_row["currency"], manual_row["note"]) == (-7000, "eur", MANUAL_PAYOUT_NOTE)

    # Requests: each payout retrieved once; ceil(251 / 100) pages for the automatic one.
    itemizing = [r for r in ledger_front.records if r.path == "/v1/balance_transactions"]
    assert [r.status for r in itemizing] == [200, 200, 200]
    assert _requests(ledger_front, f"/v1/payouts/{manual.id}") == 1
    assert _requests(ledger_front, f"/v1/payouts/{automatic['id']}") == 1
    assert len(ledger_front.records) == math.ceil(251 / 100) + 2
    report(f"reconciliation: 251 transactions of one automatic payout in {len(itemizing)} requests (goal 3)")


def test_expand_source_with_real_charges(
    ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe})
    charges = [
        client.v1.charges.create({"amount": 2000 + i, "currency": "eur", "source": "pm_card_visa"}) for i in range(3)
    ]
    payout = ledger_front.ledger.add_automatic_payout(
        [{"amount": c.amount, "fee": 88, "source": c.id} for c in charges]
    )
    conn = stripe_connection(monkeypatch, ledger_front.url)
    result = StripePayoutReconciliationOperator(
        task_id="recon",
        stripe_conn_id=conn,
        path=str(tmp_path / "r.jsonl"),
        payout_ids=payout["id"],
        expand_source=True,
        page_size=2,
    ).execute(task_context())
    assert result["count"] == 4
    rows = {r["source_id"]: r for r in _read(tmp_path / "r.jsonl")}
    for charge in charges:
        assert rows[charge.id]["source"]["object"] == "charge"
        assert rows[charge.id]["source"]["amount"] == charge.amount
    assert rows[payout["id"]]["source"]["object"] == "payout"
    assert _requests(ledger_front, "/v1/balance_transactions") == 2  # 4 rows, 2 per page


def test_payouts_arrived_in_the_data_interval(
    ledger_front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datetime import datetime, timezone

    day = 1_767_225_600  # 2026-01-01T00:00:00Z
    inside = [ledger_front.ledger.add_automatic_payout(_items(3), arrival_date=day + h * 3600) for h in (0, 23)]
    ledger_front.ledger.add_automatic_payout(_items(5), arrival_date=day + 86_400)  # next day: excluded
    ledger_front.ledger.add_automatic_payout(_items(2), arrival_date=day - 1)  # day before: excluded
    conn = stripe_connection(monkeypatch, ledger_front.url)
    ctx = task_context(
        data_interval_start=datetime.fromtimestamp(day, timezone.utc),
        data_interval_end=datetime.fromtimestamp(day + 86_400, timezone.utc),
    )
    result = StripePayoutReconciliationOperator(
        task_id="recon", stripe_conn_id=conn, path=str(tmp_path / "d.jsonl")
    ).execute(ctx)
    assert (result["payouts"], result["count"], result["manual_payouts"]) == (2, 8, [])
    assert {r["payout_id"] for r in _read(tmp_path / "d.jsonl")} == {p["id"] for p in inside}


def test_payouts_failed_after_being_paid_are_marked(
    ledger_front: LedgerFront, localstripe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_stripe.testing.settlement import Settlement, SettlementSimulator

    kept, flipped = (ledger_front.ledger.add_automatic_payout(_items(2)) for _ in range(2))
    ledger_front.ledger.fail_payout(flipped["id"], "account_closed", "The bank account has been closed")
    manual = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe}).v1.payouts.create(
        {"amount": 7000, "currency": "eur"}
    )
    then_failed = Settlement(then=Settlement("failed", "could_not_process", "Bank returned it"), then_after=0.3)
    with SettlementSimulator(localstripe, TEST_KEY, delay=0, decide=lambda _: then_failed) as bank:
        while bank.settled.get(manual.id) is not then_failed.then:
            threading.Event().wait(0.05)
    conn = stripe_connection(monkeypatch, ledger_front.url)
    target = tmp_path / "recon.jsonl"
    result = StripePayoutReconciliationOperator(
        task_id="recon", stripe_conn_id=conn, path=str(target), payout_ids=[kept["id"], flipped["id"], manual.id]
    ).execute(task_context())

    assert result["failed_payouts"] == [flipped["id"], manual.id]
    status = {r["payout_id"]: r["payout_status"] for r in _read(target)}
    assert status == {kept["id"]: "paid", flipped["id"]: "failed", manual.id: "failed"}
    # Stripe's reversal is a balance transaction of its own, not one the failed payout settled.
    listed = stripe.StripeClient(TEST_KEY, base_addresses={"api": ledger_front.url}).v1.balance_transactions.list()
    reversals = [(t.source, t.amount) for t in listed.data if t.type == "payout_failure"]
    assert reversals == [(flipped["id"], flipped["amount"])]
    assert flipped["failure_balance_transaction"] == f"txn_failure_{flipped['id']}"


def test_unknown_payout_fails_and_writes_nothing(
    ledger_front: LedgerFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = ledger_front.ledger.add_automatic_payout(_items(2))
    conn = stripe_connection(monkeypatch, ledger_front.url)
    op = StripePayoutReconciliationOperator(
        task_id="recon", stripe_conn_id=conn, path=str(tmp_path / "x.jsonl"), payout_ids=[good["id"], "po_missing"]
    )
    with pytest.raises(StripeRequestError, match="po_missing") as info:
        op.execute(task_context())
    assert info.value.http_status == 404
    assert not list(tmp_path.iterdir())  # no file, no leftover temporary file


def test_bad_ids_are_refused_before_any_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow_provider_stripe.errors import StripeInputError

    conn = stripe_connection(monkeypatch, "http://127.0.0.1:9")
    op = StripePayoutReconciliationOperator(
        task_id="recon", stripe_conn_id=conn, path=str(tmp_path / "x.jsonl"), payout_ids=["ch_notapayout"]
    )
    with pytest.raises(StripeInputError) as info:
        op.execute(task_context())
    assert info.value.field == "payout_ids"
