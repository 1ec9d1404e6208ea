"""Cross-run protection and run-level results of the payout batch, against localstripe (through the front).

* a second run of the DAG on the same instructions pays nobody whom the first paid
  (``already_paid_by_run <first run id>``), in one listing of ``ceil(payouts / 100)`` pages;
* which items it covers (explicit references by default, every item with ``True``, none
  with ``False``), failed/canceled payouts of another run do not block, the look-back bounds it,
  a connected account sees only its own payouts, and the same run's retries stay ``existing``;
* the run-level totals say which try created what.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_stripe.errors import StripeInputError
from airflow_provider_stripe.operators.payouts import StripeCreatePayoutOperator, StripePayoutBatchOperator
from airflow_provider_stripe.payouts.recovery import CROSS_RUN_LOOKBACK
from tests.integration.payout_helpers import (
    LOGICAL_DATE,
    MemoryStateStore,
    eur_items,
    list_all_payouts,
    payout_context,
    write_jsonl,
)
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection
from tests.servers.localstripe_server import clear_request_log, request_log

pytestmark = pytest.mark.timeout(180)

FIRST_RUN = f"scheduled__{LOGICAL_DATE.isoformat()}"


@pytest.fixture
def conn(localstripe: str, monkeypatch: pytest.MonkeyPatch) -> str:
    return stripe_connection(monkeypatch, localstripe)


def batch(conn_id: str, payouts: Any, **kwargs: Any) -> StripePayoutBatchOperator:
    return StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn_id, payouts=payouts, **kwargs)


def manual_run(run_id: str, **kwargs: Any) -> Any:
    """A manual run without a logical date (what ``airflow dags trigger`` gives on Airflow 3)."""
    return payout_context(logical_date=None, run_id=run_id, **kwargs)


def listings(url: str) -> list[Any]:
    return [r for r in request_log(url) if (r.method, r.path) == ("GET", "/v1/payouts")]


def creations(url: str) -> list[Any]:
    return [r for r in request_log(url) if (r.method, r.path) == ("POST", "/v1/payouts")]


def test_a_second_run_pays_nobody_the_first_paid_in_one_listing(localstripe: str, conn: str, tmp_path: Path) -> None:
    named = eur_items(150)
    unnamed = [{"amount": 777, "currency": "eur", "description": "weekly fee"}]  # a content-hash reference
    path = write_jsonl(tmp_path / "payouts.jsonl", named + unnamed)
    first = batch(conn, path).execute(payout_context())
    assert first["summary"]["created"] == 151
    paid = {r["reference"]: r["payout_id"] for r in first["results"]}

    clear_request_log(localstripe)
    started = time.time()
    second = batch(conn, path).execute(manual_run("manual__again"))  # the task does not fail

    summary = second["summary"]
    assert summary["already_paid_by_run"] == 150 and summary["created"] == 1, summary
    assert summary["this_run"]["already_paid_by_run"] == {FIRST_RUN: 150}
    assert summary["cross_run_protection"] == {
        "enabled": True,
        "covers": "explicit",
        "scope": ["account"],
        "lookback_seconds": int(CROSS_RUN_LOOKBACK.total_seconds()),
    }
    refused = [r for r in second["results"] if r["outcome"] == "already_paid_by_run"]
    assert {r["reference"]: (r["payout_id"], r["paid_by_run"]) for r in refused} == {
        ref: (paid[ref], FIRST_RUN) for ref in (i["reference"] for i in named)
    }
    (fee,) = [r for r in second["results"] if r["outcome"] == "created"]
    assert fee["payout_id"] != paid[fee["reference"]], "equal contents without a reference are a new payment"

    # Cost: one listing for the whole batch, ceil(payouts in the window / 100) pages, newest
    # first from the first try minus the look-back; one POST, for the unnamed item only.
    pages = listings(localstripe)
    assert len(pages) == math.ceil(151 / 100) == 2
    since = int(pages[0].params["created[gte]"])
    assert abs(since - (started - CROSS_RUN_LOOKBACK.total_seconds())) < 5
    assert all(p.params["limit"] == "100" for p in pages) and "starting_after" in pages[1].params
    assert len(creations(localstripe)) == 1
    assert len(list_all_payouts(localstripe, TEST_KEY)) == 152


def test_protection_covers_every_item_with_true_and_none_with_false(localstripe: str, conn: str) -> None:
    items = [{"amount": 500 + n, "currency": "eur"} for n in range(3)]  # content-hash references only
    assert batch(conn, items).execute(payout_context())["summary"]["cross_run_protection"] == {"enabled": False}
    again = batch(conn, items).execute(manual_run("manual__default"))["summary"]
    assert again["created"] == 3, "by default, equal contents without references are paid again"
    strict = batch(conn, items, cross_run_protection=True).execute(manual_run("manual__strict"))
    assert strict["summary"]["already_paid_by_run"] == 3
    assert {r["paid_by_run"] for r in strict["results"]} == {"manual__default"}, "the newest payment is named"

    named = eur_items(2)
    batch(conn, named).execute(manual_run("manual__named_1"))
    clear_request_log(localstripe)
    off = batch(conn, named, cross_run_protection=False).execute(manual_run("manual__named_2"))
    assert off["summary"]["created"] == 2, "protection off: only the run's own keys and tag count"
    assert len(list_all_payouts(localstripe, TEST_KEY)) == 3 + 3 + 2 + 2


def test_failed_and_canceled_payouts_of_another_run_do_not_block(localstripe: str, conn: str) -> None:
    items = eur_items(3)
    first = {r["reference"]: r["payout_id"] for r in batch(conn, items).execute(payout_context())["results"]}
    requests.post(
        f"{localstripe}/v1/payouts/{first['inv-0']}/cancel", auth=(TEST_KEY, ""), timeout=10
    ).raise_for_status()
    # The simulated bank's call (localstripe only): the payout failed, no money left.
    requests.post(
        f"{localstripe}/v1/payouts/{first['inv-1']}", data={"status": "failed"}, auth=(TEST_KEY, ""), timeout=10
    ).raise_for_status()

    second = batch(conn, items).execute(manual_run("manual__after_failures"))
    outcomes = {r["reference"]: r["outcome"] for r in second["results"]}
    assert outcomes == {"inv-0": "created", "inv-1": "created", "inv-2": "already_paid_by_run"}


@pytest.mark.slow
def test_the_look_back_bounds_what_blocks(localstripe: str, conn: str) -> None:
    items = eur_items(2)
    batch(conn, items).execute(payout_context())
    time.sleep(2.5)
    short = batch(conn, items, cross_run_lookback=timedelta(seconds=1)).execute(manual_run("manual__short"))
    assert short["summary"]["created"] == 2, "paid before the look-back window: not blocked"
    assert short["summary"]["cross_run_protection"]["lookback_seconds"] == 1


@pytest.mark.parametrize(
    "lookback", [timedelta(days=32), timedelta(0), 3600, "7d"], ids=["too-long", "zero", "int", "text"]
)
def test_a_bad_look_back_is_refused_before_any_request(localstripe: str, conn: str, lookback: Any) -> None:
    clear_request_log(localstripe)
    with pytest.raises(StripeInputError, match="cross_run_lookback"):
        batch(conn, eur_items(1), cross_run_lookback=lookback).execute(payout_context())
    assert request_log(localstripe) == []


def test_a_connected_account_sees_only_its_own_payouts(localstripe: str, conn: str) -> None:
    items = eur_items(3)
    on_a = batch(conn, items, account_id="acct_1AAAAAAAAAAAAAAA").execute(payout_context())
    assert on_a["summary"]["created"] == 3
    on_b = batch(conn, items, account_id="acct_1BBBBBBBBBBBBBBB").execute(manual_run("manual__b"))
    assert on_b["summary"]["created"] == 3, "another account's payouts never block"
    again_on_a = batch(conn, items, account_id="acct_1AAAAAAAAAAAAAAA").execute(manual_run("manual__a"))
    assert again_on_a["summary"]["already_paid_by_run"] == 3
    assert {r["paid_by_run"] for r in again_on_a["results"]} == {FIRST_RUN}
    assert list_all_payouts(localstripe, TEST_KEY) == [], "the platform itself paid nothing"


def test_the_same_runs_retries_find_their_own_payouts_and_say_which_try_made_them(
    localstripe: str, conn: str, tmp_path: Path
) -> None:
    items = eur_items(30)
    store = MemoryStateStore()
    # Try 1 gets through the first 20 items (e.g. killed); try 2 and a clear (try 3) follow.
    part = batch(conn, items[:20]).execute(payout_context(store=store))
    assert part["summary"]["this_run"]["created_by_try"] == {"1": 20}
    time.sleep(1.1)  # Stripe's times are whole seconds: keep the tries apart
    second = batch(conn, items).execute(payout_context(store=store, try_number=2))
    run = second["summary"]["this_run"]
    assert (second["summary"]["created"], second["summary"]["existing"]) == (10, 20)
    assert run == {
        "try_number": 2,
        "paid": 30,
        "created_by_try": {"1": 20, "2": 10},
        "found": 20,
        "already_paid_by_run": {},
        "failed": 0,
        "not_attempted": 0,
    }
    cleared = batch(conn, items).execute(payout_context(store=store, try_number=3))["summary"]
    assert cleared.get("already_paid_by_run", 0) == 0 and cleared["existing"] == 30
    assert cleared["this_run"]["created_by_try"] == {"1": 20, "2": 10}

    # Without a store (Airflow < 3.3), found by listing: try 2 can only follow try 1; a
    # later try cannot tell which earlier try, and says so.
    day2 = LOGICAL_DATE + timedelta(days=1)
    fresh = [dict(i, reference=f"day2-{i['reference']}") for i in items]
    batch(conn, fresh[:5]).execute(payout_context(logical_date=day2))
    retry = batch(conn, fresh).execute(payout_context(logical_date=day2, try_number=2))["summary"]["this_run"]
    assert retry["created_by_try"] == {"1": 5, "2": 25}
    third = batch(conn, fresh).execute(payout_context(logical_date=day2, try_number=3))["summary"]["this_run"]
    assert third["created_by_try"] == {"earlier": 30} and third["found"] == 30


def test_a_single_payout_with_a_reference_is_protected_too(localstripe: str, conn: str) -> None:
    def pay(context: Any) -> dict[str, Any]:
        op = StripeCreatePayoutOperator(
            task_id="bonus", stripe_conn_id=conn, amount=2500, currency="eur", reference="bonus-42"
        )
        return op.execute(context)

    first = pay(payout_context())
    assert first["outcome"] == "created"
    second = pay(manual_run("manual__bonus"))
    assert (second["outcome"], second["id"], second["paid_by_run"]) == ("already_paid_by_run", first["id"], FIRST_RUN)
