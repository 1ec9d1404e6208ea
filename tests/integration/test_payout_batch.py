"""StripePayoutBatchOperator against a real localstripe (EUR only) on 127.0.0.1.

What is proven here, item by item, by counting the payouts the server holds per
metadata reference (read with plain HTTP, not through the provider):

* a batch creates each payout once; a rerun of the same run (new try, with or without a
  task state store) creates nothing new; the next run pays again;
* invalid items are all reported (index, reference, field) and nothing is sent;
* ``on_failure="continue"`` attempts everything then fails listing the failures;
  ``"stop"`` stops at the first failure;
* an item refused definitively (insufficient funds) and later fixed gets a *fresh*
  idempotency key on the retry, with or without a state store (behind the fault proxy,
  which implements Stripe's idempotency: a reused key would replay the refusal);
* a lost answer reuses the key (SDK retry and task retry) and never pays twice;
* 10,000 items in one run, against localstripe: each paid once, with the same traced memory
  per item as 1,000.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.compat import AirflowFailException
from airflow_provider_stripe.errors import (
    SourceError,
    StripeBatchInputError,
    StripePayoutError,
    StripePayoutRefusedError,
)
from airflow_provider_stripe.operators.payouts import StripePayoutBatchOperator
from airflow_provider_stripe.payouts.keys import PayoutIdentity
from tests.airflow_env import rate_limit_caps_env
from tests.integration.payout_helpers import (
    LOGICAL_DATE,
    FakePayoutsApi,
    MemoryStateStore,
    eur_items,
    insufficient_funds,
    iter_lines,
    payout_context,
    payouts_by_reference,
    write_jsonl,
)
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection
from tests.servers.fault_proxy import FaultKind, FaultPlan, FaultProxy
from tests.servers.localstripe_server import clear_request_log, request_log
from tests.servers.stub_stripe import StubServer

pytestmark = pytest.mark.timeout(120)

ProxyFactory = Callable[..., FaultProxy]
POST_ONLY = frozenset({"POST"})


@pytest.fixture
def conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``conn(base_url, **extra) -> conn_id``: a fresh connection (own rate limiter)."""

    def make(base_url: str, **extra: Any) -> str:
        return stripe_connection(monkeypatch, base_url, **extra)

    return make


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.05)


def batch(conn_id: str, payouts: Any, **kwargs: Any) -> StripePayoutBatchOperator:
    return StripePayoutBatchOperator(task_id="pay_out", stripe_conn_id=conn_id, payouts=payouts, **kwargs)


def tag_of(context: dict[str, Any]) -> str:
    return PayoutIdentity.from_context(context).tag


def assert_each_paid_once(url: str, context: dict[str, Any], references: list[str]) -> dict[str, str]:
    """Exactly one payout per reference for this run (and no other); return reference -> payout id."""
    grouped = payouts_by_reference(url, TEST_KEY, tag_of(context))
    twice = {ref: [p["id"] for p in ps] for ref, ps in grouped.items() if len(ps) != 1}
    assert not twice, f"paid more than once: {twice}"
    assert sorted(grouped) == sorted(references)
    return {ref: ps[0]["id"] for ref, ps in grouped.items()}


# -- once per run ---------------------------------------------------------------------------


def test_batch_pays_once_per_run_and_again_next_run(localstripe: str, conn: Callable[..., str], tmp_path: Path) -> None:
    items = eur_items(30)
    refs = [i["reference"] for i in items]
    path = write_jsonl(tmp_path / "payouts.jsonl", items)
    conn_id = conn(localstripe)

    first = payout_context()
    result = batch(conn_id, path, max_workers=4).execute(first)
    assert result["summary"]["created"] == 30 and result["summary"]["amounts"] == {
        "eur": {"created": sum(i["amount"] for i in items)}
    }
    paid = assert_each_paid_once(localstripe, first, refs)
    assert {r["reference"]: r["payout_id"] for r in result["results"]} == paid
    json.dumps(result)  # XCom-safe

    # The same run again -- a new try, a new run id (as dag.test gives), no state store:
    # every payout is found by listing (localstripe ignores idempotency keys).
    again = payout_context(try_number=2, run_id="manual__rerun")
    clear_request_log(localstripe)
    rerun = batch(conn_id, path, max_workers=4).execute(again)
    assert rerun["summary"].get("created", 0) == 0 and rerun["summary"]["existing"] == 30
    # Found by the query Stripe gets: created[gte] the run's window start, 100 per page.
    (listing,) = [r for r in request_log(localstripe) if (r.method, r.path) == ("GET", "/v1/payouts")]
    assert listing.status == 200 and listing.params["limit"] == "100"
    window_start = PayoutIdentity.from_context(again).window_start(None)
    assert int(listing.params["created[gte]"]) == window_start
    assert {r["reference"]: r["payout_id"] for r in rerun["results"]} == paid
    assert_each_paid_once(localstripe, first, refs)

    # The next run on the same references: cross-run protection (on by default for explicit
    # references) pays nobody again; without it, the next run pays again under its own keys and tag.
    following = payout_context(logical_date=LOGICAL_DATE + timedelta(days=1))
    refused = batch(conn_id, items).execute(following)["summary"]
    assert refused.get("created", 0) == 0 and refused["already_paid_by_run"] == 30
    assert batch(conn_id, items, cross_run_protection=False).execute(following)["summary"]["created"] == 30
    assert set(assert_each_paid_once(localstripe, following, refs).values()).isdisjoint(paid.values())


def test_retry_resumes_from_task_state_store_without_any_request(
    localstripe: str, conn: Callable[..., str], fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy()
    items = eur_items(12)
    store = MemoryStateStore()
    conn_id = conn(proxy.url)
    batch(conn_id, items).execute(payout_context(store=store))
    assert store.values and all(len(v) < 65_535 for v in store.values.values())
    proxy.reset_stats()

    result = batch(conn_id, items).execute(payout_context(store=store, try_number=2))
    assert result["summary"]["existing"] == 12
    assert proxy.stats["requests"] == 0, "a retry with everything remembered sends nothing"
    assert_each_paid_once(localstripe, payout_context(), [i["reference"] for i in items])


# -- validation -----------------------------------------------------------------------------


def test_invalid_items_are_all_reported_and_nothing_is_sent(localstripe: str, conn: Callable[..., str]) -> None:
    items: list[Any] = eur_items(3)
    items += [
        {"reference": "bad-amount", "amount": 12.5, "currency": "eur"},
        {"reference": "bad-currency", "amount": 1000, "currency": "euro"},
        {"reference": "inv-0", "amount": 999, "currency": "eur"},  # duplicate reference of item 0
        {"amount": 1000, "currency": "eur", "ammount": 3},  # typo'd field, no reference
        "not a dict",
    ]
    with pytest.raises(StripeBatchInputError) as caught:
        batch(conn(localstripe), items).execute(payout_context())
    message = str(caught.value)
    assert message.startswith("5 of 8 payout instruction(s) are invalid")
    for expected in (
        "item 3, reference 'bad-amount', field 'amount'",
        "item 4, reference 'bad-currency', field 'currency'",
        "item 5, reference 'inv-0', field 'reference': duplicate of item 0",
        "item 6, field 'ammount': unknown field",
        "item 7, field 'item'",
        "no payout was created",
    ):
        assert expected in message, message
    assert payouts_by_reference(localstripe, TEST_KEY) == {}


def test_unreadable_file_lines_are_reported_with_their_line(
    localstripe: str, conn: Callable[..., str], tmp_path: Path
) -> None:
    path = tmp_path / "payouts.jsonl"
    path.write_text('{"reference": "a", "amount": 100, "currency": "eur"}\n{"reference": "b", "amount": 1\n')
    with pytest.raises(StripeBatchInputError, match=r"item 1, field 'json': line 2 is not JSON"):
        batch(conn(localstripe), str(path)).execute(payout_context())
    assert payouts_by_reference(localstripe, TEST_KEY) == {}


# -- partial failures ---------------------------------------------------------------------------


def test_on_failure_continue_attempts_everything_then_fails_listing_failures(
    localstripe: str, conn: Callable[..., str]
) -> None:
    items = eur_items(10)
    for n in (3, 7):
        items[n]["currency"] = "usd"  # valid for Stripe, refused by localstripe (EUR only): 400
    context = payout_context()
    with pytest.raises(StripePayoutError) as caught:
        batch(conn(localstripe), items, max_workers=3).execute(context)
    error = caught.value
    assert error.summary["created"] == 8 and error.summary["failed"] == 2
    assert [f["reference"] for f in error.failures] == ["inv-3", "inv-7"]
    assert all(f["error"]["http_status"] == 400 and "fresh key" in f["error"]["next"] for f in error.failures)
    assert "item 3, reference 'inv-3'" in str(error) and "item 7, reference 'inv-7'" in str(error)
    assert_each_paid_once(localstripe, context, [i["reference"] for n, i in enumerate(items) if n not in (3, 7)])


def test_on_failure_stop_stops_at_the_first_failure(localstripe: str, conn: Callable[..., str], tmp_path: Path) -> None:
    items = eur_items(10)
    items[3]["currency"] = "usd"
    context = payout_context()
    results = tmp_path / "out" / "results.jsonl"
    with pytest.raises(StripePayoutError) as caught:
        batch(conn(localstripe), items, max_workers=1, on_failure="stop", results_path=str(results)).execute(context)
    summary = caught.value.summary
    assert (summary["created"], summary["failed"], summary["not_attempted"]) == (3, 1, 6)
    assert "not attempted" in str(caught.value)
    assert not isinstance(caught.value, AirflowFailException), "a retry attempts the items not attempted"
    rows = list(iter_lines(results))
    assert [r["outcome"] for r in rows] == ["created"] * 3 + ["failed"] + ["not_attempted"] * 6
    assert_each_paid_once(localstripe, context, ["inv-0", "inv-1", "inv-2"])


# -- fresh keys after a definitive refusal -----------------------------------------------------------


@pytest.mark.parametrize("with_store", [True, False], ids=["state-store", "no-state-store"])
def test_refused_item_gets_a_fresh_key_once_the_cause_is_fixed(
    stub_stripe: StubServer, fault_proxy: ProxyFactory, conn: Callable[..., str], with_store: bool
) -> None:
    funds = {"sufficient": False}

    def refuse(form: Mapping[str, str]) -> Any:
        short = form.get("metadata[airflow_payout_ref]") == "inv-2" and not funds["sufficient"]
        return insufficient_funds() if short else None

    api = FakePayoutsApi(refuse)
    stub_stripe.responder = api
    proxy = fault_proxy(upstream_url=stub_stripe.url)  # Stripe's idempotency semantics in front
    conn_id = conn(proxy.url)
    store = MemoryStateStore() if with_store else None
    items = eur_items(5)

    first_try = payout_context(store=store, try_number=1)
    with pytest.raises(StripePayoutRefusedError) as caught:
        batch(conn_id, items).execute(first_try)
    (failure,) = caught.value.failures
    assert failure["reference"] == "inv-2" and failure["error"]["code"] == "balance_insufficient"
    # Definitive refusals only: no Airflow retry; the results are published all the same, and named in one block.
    assert isinstance(caught.value, AirflowFailException)
    published = first_try["ti"].xcoms["return_value"]
    assert sorted((r["reference"], r["outcome"]) for r in published["results"]) == [
        (i["reference"], "failed" if i["reference"] == "inv-2" else "created") for i in items
    ]
    assert all(r["payout_id"].startswith("po_") for r in published["results"] if r["outcome"] == "created")
    assert "reference 'inv-2': [balance_insufficient]" in str(caught.value) and "Not retried" in str(caught.value)

    funds["sufficient"] = True  # the balance was topped up; Airflow retries the task
    result = batch(conn_id, items).execute(payout_context(store=store, try_number=2))
    assert result["summary"]["created"] == 1 and result["summary"]["existing"] == 4

    attempts = [r for r in api.creates if r.form.get("metadata[airflow_payout_ref]") == "inv-2"]
    keys = [r.headers["Idempotency-Key"] for r in attempts]
    assert len(keys) == 2 and keys[0] != keys[1], "the retry must use a fresh key"
    # Without a store, the retry first meets Stripe's saved refusal (a replay), then moves on.
    assert proxy.stats["replayed"] == (0 if with_store else 1)
    assert sorted(p["metadata"]["airflow_payout_ref"] for p in api.payouts) == [i["reference"] for i in items]


# -- lost answers ---------------------------------------------------------------------------------


def test_lost_answer_is_retried_by_the_sdk_under_the_same_key(
    localstripe: str, fault_proxy: ProxyFactory, conn: Callable[..., str], fast_backoff: None
) -> None:
    proxy = fault_proxy(FaultPlan(script=(FaultKind.LOST_RESPONSE,), methods=POST_ONLY))
    items = eur_items(5)
    context = payout_context()
    result = batch(conn(proxy.url, max_network_retries=2), items, max_workers=1).execute(context)
    assert result["summary"]["created"] == 5
    assert proxy.stats["lost_response"] == 1 and proxy.stats["replayed"] == 1
    assert_each_paid_once(localstripe, context, [i["reference"] for i in items])


@pytest.mark.parametrize("fault", [FaultKind.LOST_RESPONSE, FaultKind.RESET], ids=["executed", "not-executed"])
def test_task_retry_after_a_lost_answer_never_pays_twice(
    localstripe: str, fault_proxy: ProxyFactory, conn: Callable[..., str], fault: FaultKind
) -> None:
    proxy = fault_proxy(FaultPlan(script=(fault,), methods=POST_ONLY))
    conn_id = conn(proxy.url, max_network_retries=0)
    store = MemoryStateStore()
    items = eur_items(5)
    context = payout_context(store=store)
    with pytest.raises(StripePayoutError) as caught:
        batch(conn_id, items, max_workers=1).execute(context)
    (failure,) = caught.value.failures
    assert failure["reference"] == "inv-0" and "outcome unknown" in failure["error"]["next"]
    assert not isinstance(caught.value, AirflowFailException), "an unknown outcome is retried by Airflow"
    first_key = next(r.idempotency_key for r in proxy.records if r.method == "POST")

    proxy.reset_stats()
    result = batch(conn_id, items, max_workers=1).execute(payout_context(store=store, try_number=2))
    posts = [r for r in proxy.records if r.method == "POST"]
    if fault is FaultKind.LOST_RESPONSE:  # it was created: found by listing, nothing sent
        assert result["summary"]["existing"] == 5 and posts == []
    else:  # never reached Stripe: sent again under the SAME key
        assert result["summary"]["created"] == 1 and [p.idempotency_key for p in posts] == [first_key]
    assert_each_paid_once(localstripe, context, [i["reference"] for i in items])


# -- 10,000 items ----------------------------------------------------------------------------------


def _peak_bytes(run: Callable[[], Any]) -> tuple[int, float]:
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        run()
        return tracemalloc.get_traced_memory()[1], time.perf_counter() - started
    finally:
        tracemalloc.stop()


@pytest.mark.scale
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_ten_thousand_payouts_against_localstripe_keep_memory_flat_per_item(
    localstripe: str, conn: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Peak traced memory per item of the whole execute (file -> validation -> engine -> HTTP -> results).

    tracemalloc, not RSS: it sees only what this process allocates from the run's start (the
    server is another process), and two runs compare in one process, where peak RSS only rises.
    """
    for name, value in rate_limit_caps_env(1_000_000, 10_000_000).items():
        monkeypatch.setenv(name, value)
    conn_id = conn(localstripe, rate_limit_per_minute=1_000_000, rate_limit_per_hour=10_000_000)
    batch(conn_id, eur_items(50, "warm")).execute(payout_context(task_id="warm-up"))  # imports, caches

    measured = {}
    for count in (1_000, 10_000):
        items = eur_items(count, f"mem{count}")
        path = write_jsonl(tmp_path / f"p{count}.jsonl", items)
        results_path = tmp_path / f"r{count}.jsonl"
        op = batch(conn_id, path, max_workers=8, results_path=str(results_path))
        context = payout_context(task_id=f"mem-{count}", store=MemoryStateStore())
        results: list[dict[str, Any]] = []

        def execute(op: StripePayoutBatchOperator = op, context: Any = context, out: list[Any] = results) -> None:
            out.append(op.execute(context))

        peak, seconds = _peak_bytes(execute)
        (result,) = results
        assert result["summary"]["created"] == count and result["results"] == []
        assert sum(1 for _ in iter_lines(results_path)) == count
        assert_each_paid_once(localstripe, context, [i["reference"] for i in items])
        measured[count] = peak / count
        print(
            f"\n{count} payouts in localstripe: peak {peak / 1e6:.2f} MB = {peak / count:.0f} B/item, {seconds:.1f} s"
        )
    # What each item beyond the first 1,000 costs (the fixed part cancels out): ~400 B measured here.
    marginal = (measured[10_000] * 10_000 - measured[1_000] * 1_000) / 9_000
    assert marginal < 600, f"each item costs {marginal:.0f} B of memory: {measured} (B/item)"


# -- issue 8: no input slips through ----------------------------------------------------------------


def test_a_row_with_a_duplicated_key_is_refused(localstripe: str, conn: Callable[..., str], tmp_path: Path) -> None:
    """``{"amount": 100, "amount": 100000}`` kept the last value silently before."""
    path = tmp_path / "payouts.jsonl"
    path.write_text(
        '{"reference": "a", "amount": 100, "currency": "eur"}\n'
        '{"reference": "b", "amount": 100, "amount": 100000, "currency": "eur"}\n'
    )
    with pytest.raises(StripeBatchInputError, match=r"line 2: the key 'amount' appears twice"):
        batch(conn(localstripe), str(path)).execute(payout_context())
    array = tmp_path / "payouts.json"
    array.write_text('[{"reference": "a", "amount": 100, "currency": "eur", "currency": "usd"}]')
    with pytest.raises(SourceError, match=r"the key 'currency' appears twice"):
        batch(conn(localstripe), str(array)).execute(payout_context())
    assert payouts_by_reference(localstripe, TEST_KEY) == {}


@pytest.mark.parametrize("source", [[], "empty.jsonl"])
def test_an_empty_batch_sends_no_request(
    stub_stripe: StubServer, conn: Callable[..., str], tmp_path: Path, source: Any
) -> None:
    if source == "empty.jsonl":
        (tmp_path / source).write_text("\n")
        source = str(tmp_path / source)
    result = batch(conn(stub_stripe.url), source).execute(payout_context())
    assert result["summary"]["total"] == 0
    assert stub_stripe.requests == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("currency", "xyz"), ("currency", "usd\n"), ("destination", "ba_1\n")],
)
def test_bad_currencies_and_ids_are_refused_before_any_request(
    stub_stripe: StubServer, conn: Callable[..., str], field: str, value: str
) -> None:
    item = {"reference": "a", "amount": 100, "currency": "eur", field: value}
    with pytest.raises(StripeBatchInputError, match=field):
        batch(conn(stub_stripe.url), [item]).execute(payout_context())
    assert stub_stripe.requests == []
