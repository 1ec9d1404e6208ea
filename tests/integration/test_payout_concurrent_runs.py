"""Runs at the same time never pay one reference twice: Stripe's own idempotency refuses the second.

Two payout batches on the same references start together (threads released by one
barrier), against localstripe behind the fault proxy, which has Stripe's idempotency
semantics (``409 idempotency_key_in_use`` while a key is in flight, ``400
idempotency_error`` for a key reused with other parameters). Every POST is held 40 ms
at the proxy while its key is claimed, so the runs really overlap: each test checks that
contention happened (the proxy counted 409s or mismatches), else it would prove nothing.

* two runs of one DAG (a scheduled run and a manual run without a logical date): every
  reference paid once, the loser's items ``already_paid_by_run`` with the winner's run id,
  both tasks succeed;
* two different DAGs paying one file, at the same time or one after the other: the same;
* ``reference_scope`` shares protection between DAGs that name it, and keeps it apart from
  the account-wide scope; a connected account's references are its own;
* a reference another run saw refused is paid once, under the next generation;
* a protected reference found with two payouts that moved money fails the task loudly,
  after the results are published.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_stripe.errors import StripeDuplicatePayoutError, StripePayoutError
from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from airflow_provider_stripe.payouts.keys import (
    DAG_METADATA_KEY,
    DAG_RUN_METADATA_KEY,
    REFERENCE_METADATA_KEY,
    RUN_METADATA_KEY,
    SCOPE_METADATA_KEY,
)
from tests.integration.payout_helpers import eur_items, list_all_payouts, payout_context
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection
from tests.servers.fault_proxy import FaultKind, FaultPlan, FaultProxy

pytestmark = pytest.mark.timeout(240)

ITEMS = 150
HOLD = FaultPlan(rates={FaultKind.SLOW: 1.0}, slow_ms=40, methods=frozenset({"POST"}))
"""Every POST held 40 ms while its key is in flight: the runs overlap on most keys."""


def together(*runs: Callable[[], Any]) -> list[Any]:
    """Run callables in threads released at the same moment; return results (or the exceptions raised)."""
    barrier = threading.Barrier(len(runs))
    results: list[Any] = [None] * len(runs)

    def go(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = runs[i]()
        except Exception as exc:  # returned for the test to inspect
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=200)
    assert not any(t.is_alive() for t in threads), "a batch did not finish in 200 s"
    return results


def batch(conn_id: str, items: Any, **kwargs: Any) -> StripePayoutBatchOperator:
    return StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn_id, payouts=items, max_workers=4, **kwargs)


def payouts_per_reference(base_url: str) -> Counter[str]:
    return Counter(p["metadata"].get(REFERENCE_METADATA_KEY) for p in list_all_payouts(base_url, TEST_KEY))


def contention(proxy: FaultProxy) -> int:
    return proxy.stats["idempotency_in_use"] + proxy.stats["idempotency_mismatch"]


@pytest.fixture
def proxy(fault_proxy: Callable[..., FaultProxy]) -> FaultProxy:
    return fault_proxy(HOLD)


@pytest.fixture
def conn(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> str:
    return stripe_connection(monkeypatch, proxy.url, max_network_retries=2)


def test_a_scheduled_and_a_manual_run_at_the_same_time_pay_each_reference_once(
    localstripe: str, proxy: FaultProxy, conn: str
) -> None:
    items = eur_items(ITEMS)
    scheduled, manual = together(
        lambda: batch(conn, items).execute(payout_context()),
        lambda: batch(conn, items).execute(payout_context(logical_date=None, run_id="manual__again")),
    )
    assert isinstance(scheduled, dict) and isinstance(manual, dict), (scheduled, manual)  # both tasks succeed
    assert contention(proxy) > 0, f"the runs did not overlap: {proxy.stats}"
    per_reference = payouts_per_reference(localstripe)
    assert set(per_reference) == {i["reference"] for i in items} and set(per_reference.values()) == {1}
    runs = {scheduled["summary"]["run"]: scheduled, manual["summary"]["run"]: manual}
    created = sum(r["summary"].get("created", 0) for r in runs.values())
    refused = sum(r["summary"].get("already_paid_by_run", 0) for r in runs.values())
    assert (created, refused) == (ITEMS, ITEMS), [r["summary"] for r in runs.values()]
    assert not any(r["summary"].get("failed") for r in runs.values())
    # Each refused item names the run that paid it, and that run's payout.
    paid_by = {
        row["reference"]: (row["payout_id"], row["dag_run"])
        for result, dag_run in ((scheduled, "scheduled__2026-01-01T00:00:00+00:00"), (manual, "manual__again"))
        for row in ({**r, "dag_run": dag_run} for r in result["results"])
        if row["outcome"] == "created"
    }
    for result in (scheduled, manual):
        for row in result["results"]:
            if row["outcome"] == "already_paid_by_run":
                assert (row["payout_id"], row["paid_by_run"]) == paid_by[row["reference"]]
                assert row["paid_by_dag"] == "payout_batch_tests"


def test_two_dags_paying_one_file_pay_it_once_together_or_one_after_the_other(
    localstripe: str, proxy: FaultProxy, conn: str
) -> None:
    items = eur_items(60)
    first, second = together(
        lambda: batch(conn, items).execute(payout_context(dag_id="settlements_eu")),
        lambda: batch(conn, items).execute(payout_context(dag_id="settlements_backfill")),
    )
    assert isinstance(first, dict) and isinstance(second, dict), (first, second)
    assert contention(proxy) > 0, f"the runs did not overlap: {proxy.stats}"
    assert first["summary"].get("created", 0) + second["summary"].get("created", 0) == 60
    assert set(payouts_per_reference(localstripe).values()) == {1}

    later = batch(conn, items).execute(payout_context(dag_id="month_end_rerun"))
    assert later["summary"]["already_paid_by_run"] == 60 and later["summary"].get("created", 0) == 0
    assert {r["paid_by_dag"] for r in later["results"]} <= {"settlements_eu", "settlements_backfill"}
    assert len(list_all_payouts(localstripe, TEST_KEY)) == 60


def test_reference_scope_is_shared_by_dags_that_name_it_and_apart_from_the_account_scope(
    localstripe: str, proxy: FaultProxy, conn: str
) -> None:
    items = eur_items(20, prefix="emp")
    payroll_a, payroll_b = together(
        lambda: batch(conn, items, reference_scope="payroll").execute(payout_context(dag_id="payroll_a")),
        lambda: batch(conn, items, reference_scope="payroll").execute(payout_context(dag_id="payroll_b")),
    )
    assert payroll_a["summary"].get("created", 0) + payroll_b["summary"].get("created", 0) == 20
    account_wide = batch(conn, items).execute(payout_context(dag_id="bonuses"))
    assert account_wide["summary"].get("created", 0) == 20, "another scope: other payments"
    assert account_wide["summary"]["cross_run_protection"]["scope"] == ["account"]
    assert set(payouts_per_reference(localstripe).values()) == {2}


def test_a_connected_accounts_references_are_its_own(localstripe: str, proxy: FaultProxy, conn: str) -> None:
    items = eur_items(10)
    on_a, on_b = together(
        lambda: batch(conn, items, account_id="acct_1AAAAAAAAAAAAAAA").execute(payout_context()),
        lambda: batch(conn, items, account_id="acct_1BBBBBBBBBBBBBBB").execute(payout_context(run_id="manual__b")),
    )
    assert on_a["summary"].get("created", 0) == on_b["summary"].get("created", 0) == 10


def test_a_protected_reference_paid_twice_fails_the_task_after_publishing_the_results(
    localstripe: str, conn: str
) -> None:
    import stripe

    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe})
    for run in ("manual__x", "manual__y"):  # e.g. two runs of an older deployment
        client.v1.payouts.create(
            {
                "amount": 1100,
                "currency": "eur",
                "metadata": {
                    REFERENCE_METADATA_KEY: "inv-0",
                    RUN_METADATA_KEY: run,
                    SCOPE_METADATA_KEY: "account",
                    DAG_METADATA_KEY: "old_dag",
                    DAG_RUN_METADATA_KEY: run,
                },
            }
        )
    context = payout_context()
    with pytest.raises(StripeDuplicatePayoutError) as caught:
        batch(conn, eur_items(3)).execute(context)
    assert "inv-0" in str(caught.value) and "Cancel the extra payout" in str(caught.value)
    published = context["ti"].xcoms["return_value"]
    assert published["summary"].get("created", 0) == 2 and published["summary"]["already_paid_by_run"] == 1
    assert list(published["summary"]["duplicate_payouts"]) == ["inv-0"]


def test_a_reference_another_run_saw_refused_is_paid_under_the_next_generation_once(
    localstripe: str, proxy: FaultProxy, conn: str
) -> None:
    bad = [{**eur_items(1)[0], "currency": "usd"}]  # valid for Stripe, refused by localstripe (EUR only): 400
    with pytest.raises(StripePayoutError, match="1 of 1 payout"):  # nothing paid; the key holds the refusal
        batch(conn, bad).execute(payout_context(dag_id="eu_payouts"))
    good = batch(conn, eur_items(1)).execute(payout_context(dag_id="eu_rerun"))
    assert good["summary"].get("created", 0) == 1 and proxy.stats["idempotency_mismatch"] == 1
    # The first DAG's retry walks past its own refusal and meets the payout the other DAG made.
    retry = batch(conn, bad).execute(payout_context(dag_id="eu_payouts", try_number=2))
    assert retry["results"][0]["outcome"] == "already_paid_by_run"
    assert retry["results"][0]["paid_by_dag"] == "eu_rerun"
    assert payouts_per_reference(localstripe) == Counter({"inv-0": 1})
