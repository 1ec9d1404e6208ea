"""StripePayoutSensor and StripePayoutTrigger against a real localstripe on 127.0.0.1.

Payouts are created in localstripe and moved to paid / failed / canceled through its
update and cancel endpoints, as Stripe's bank side would; the sensor and trigger only
read them through the provider's hook and the official SDK. Request counts are taken
by the fault proxy (no faults configured) sitting between the client and localstripe.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from airflow_provider_stripe.compat import AirflowFailException, AirflowSkipException, TaskDeferred
from airflow_provider_stripe.errors import PayoutIdsError
from airflow_provider_stripe.payouts.lookup import afetch_payouts, fetch_payouts
from airflow_provider_stripe.payouts.watch import normalize_payout_ids
from airflow_provider_stripe.sensors.payouts import StripePayoutSensor
from airflow_provider_stripe.testing.connection import LOCAL_TEST_KEY, connection_env
from airflow_provider_stripe.testing.settlement import PAID, Settlement, SettlementSimulator
from airflow_provider_stripe.triggers.payouts import StripePayoutTrigger
from tests.servers.fault_proxy import FaultProxy
from tests.servers.stub_stripe import refused_url

pytestmark = pytest.mark.timeout(60)


class LocalPayouts:
    """Create payouts in localstripe and play the bank: mark them paid, failed or canceled."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.auth = (LOCAL_TEST_KEY, "")

    def create(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            resp = self.session.post(f"{self.url}/v1/payouts", data={"amount": 1000 + i, "currency": "eur"}, timeout=5)
            resp.raise_for_status()
            ids.append(resp.json()["id"])
        return ids

    def set_status(self, payout_id: str, status: str, **fields: str) -> None:
        resp = self.session.post(f"{self.url}/v1/payouts/{payout_id}", data={"status": status, **fields}, timeout=5)
        resp.raise_for_status()

    def cancel(self, payout_id: str) -> None:
        self.session.post(f"{self.url}/v1/payouts/{payout_id}/cancel", timeout=5).raise_for_status()


@pytest.fixture
def bank(localstripe: str) -> Iterator[LocalPayouts]:
    payouts = LocalPayouts(localstripe)
    yield payouts
    payouts.session.close()


_conn_counter = iter(range(100_000))


@pytest.fixture
def conn_for(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``conn_for(base_url) -> conn_id``: a fresh ``stripe`` connection (own rate limiter) to that server."""

    def make(base_url: str) -> str:
        conn_id = f"stripe_payout_sensor_{next(_conn_counter)}"
        for name, value in connection_env(conn_id, base_url=base_url).items():
            monkeypatch.setenv(name, value)
        return conn_id

    return make


def _sensor(conn_id: str, payout_ids: Any, **kwargs: Any) -> StripePayoutSensor:
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("timeout", 30)
    return StripePayoutSensor(task_id="wait_for_payouts", payout_ids=payout_ids, stripe_conn_id=conn_id, **kwargs)


# -- inputs ---------------------------------------------------------------------------


def test_payout_ids_accept_every_shape_a_dag_passes() -> None:
    batch_result = {
        "summary": {"total": 3, "created": 2, "failed": 1},
        "results": [
            {"index": 0, "reference": "a", "outcome": "created", "payout_id": "po_1"},
            {"index": 1, "reference": "b", "outcome": "failed", "error": {"code": "x"}},
            {"index": 2, "reference": "c", "outcome": "existing", "payout_id": "po_2"},
        ],
    }
    assert normalize_payout_ids("po_1") == ("po_1",)
    assert normalize_payout_ids(["po_1", "po_2", "po_1"]) == ("po_1", "po_2")
    assert normalize_payout_ids(batch_result) == ("po_1", "po_2")
    assert normalize_payout_ids(batch_result["results"]) == ("po_1", "po_2")
    assert normalize_payout_ids(json.dumps(batch_result)) == ("po_1", "po_2")
    assert normalize_payout_ids(str(["po_1", "po_2"])) == ("po_1", "po_2")  # a rendered Python list
    with pytest.raises(PayoutIdsError, match="tr_123"):
        normalize_payout_ids(["tr_123"])
    with pytest.raises(PayoutIdsError, match="results_path"):
        normalize_payout_ids({"summary": {"results_truncated": True}, "results": []})


def test_payout_ids_read_from_the_batch_results_file(tmp_path: Any) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"payout_id": "po_a", "outcome": "created"}\n{"outcome": "failed"}\n{"payout_id": "po_b"}\n')
    assert normalize_payout_ids({"summary": {"results_path": str(path)}, "results": []}) == ("po_a", "po_b")


# -- poke mode ------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 8], ids=["retrieve-each", "listing"])
def test_poke_waits_while_pending_and_succeeds_once_paid(
    bank: LocalPayouts, conn_for: Any, localstripe: str, count: int
) -> None:
    ids = bank.create(count)
    sensor = _sensor(conn_for(localstripe), ids)
    assert not sensor.poke({})
    for payout_id in ids[:-1]:
        bank.set_status(payout_id, "paid")
    assert not sensor.poke({})
    bank.set_status(ids[-1], "paid")
    done = sensor.poke({})
    assert done and done.xcom_value == {"status": "paid", "count": count, "payout_ids": ids}


def test_execute_in_poke_mode_returns_once_the_bank_settles(
    bank: LocalPayouts, conn_for: Any, localstripe: str
) -> None:
    ids = bank.create(5)
    sensor = _sensor(conn_for(localstripe), {"summary": {}, "results": [{"payout_id": p} for p in ids]})
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=0.5) as bank_side:
        result = sensor.execute({})
    assert set(bank_side.settled) == set(ids)
    assert result["payout_ids"] == ids


@pytest.mark.parametrize("count", [2, 6], ids=["retrieve-each", "listing"])
def test_failed_and_canceled_payouts_fail_at_once_with_their_codes(
    bank: LocalPayouts, conn_for: Any, localstripe: str, count: int
) -> None:
    ids = bank.create(count)
    bank.set_status(ids[0], "failed", failure_code="account_closed", failure_message="The bank account has been closed")
    bank.cancel(ids[1])
    with pytest.raises(AirflowFailException) as info:
        _sensor(conn_for(localstripe), ids).poke({})
    message = str(info.value)
    assert f"{ids[0]} is failed (failure_code=account_closed, failure_message=The bank account has been closed)" in (
        message
    )
    assert f"{ids[1]} is canceled" in message
    assert "not retried" in message


def test_unknown_payout_id_fails_naming_it(bank: LocalPayouts, conn_for: Any, localstripe: str) -> None:
    with pytest.raises(AirflowFailException, match="po_doesnotexist is not_found"):
        _sensor(conn_for(localstripe), ["po_doesnotexist"]).poke({})


# -- requests per poke ------------------------------------------------------------------


def test_500_payouts_cost_5_list_requests_per_poke(
    bank: LocalPayouts, conn_for: Any, fault_proxy: Any, localstripe: str
) -> None:
    ids = bank.create(500)
    proxy: FaultProxy = fault_proxy()
    sensor = _sensor(conn_for(proxy.url), ids)
    assert not sensor.poke({})
    lookups = [r for r in proxy.records if r.path.startswith("/v1/payouts")]
    assert [(r.method, r.path) for r in lookups] == [("GET", "/v1/payouts")] * 5

    async def async_lookup() -> int:
        from airflow_provider_stripe.hooks.stripe import StripeHook

        found = await afetch_payouts(StripeHook(sensor.stripe_conn_id).requests, ids)
        assert len(found.found) == 500
        return found.requests

    before = len(proxy.records)
    assert asyncio.run(async_lookup()) == 5
    assert len(proxy.records) - before == 5


def test_ids_missing_from_the_listing_are_retrieved_individually(
    bank: LocalPayouts, conn_for: Any, localstripe: str
) -> None:
    from airflow_provider_stripe.hooks.stripe import StripeHook

    wanted = bank.create(4)
    newer = bank.create(350)  # Stripe lists newest first: these fill the page budget
    lookup = fetch_payouts(StripeHook(conn_for(localstripe)).requests, [*wanted, "po_gone"])
    assert lookup.list_requests == 3  # ceil(5 / 100) + 2 slack pages
    assert lookup.retrieve_requests == 5 and set(lookup.found) == set(wanted)
    assert newer


# -- deferrable: the trigger ---------------------------------------------------------------


def _run_trigger(trigger: StripePayoutTrigger) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        event = await anext(trigger.run())
        return dict(event.payload)

    return asyncio.run(first_event())


def test_trigger_yields_success_once_the_bank_pays(bank: LocalPayouts, conn_for: Any, localstripe: str) -> None:
    ids = bank.create(6)
    trigger = StripePayoutTrigger(payout_ids=ids, stripe_conn_id=conn_for(localstripe), poll_interval=0.2)
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=0.5):
        event = _run_trigger(trigger)
    assert event["status"] == "success" and event["count"] == 6


def test_trigger_yields_failure_with_codes(bank: LocalPayouts, conn_for: Any, localstripe: str) -> None:
    ids = bank.create(5)
    failing = ids[2]

    def decide(payout: Any) -> Settlement:
        if payout["id"] == failing:
            return Settlement("failed", "insufficient_funds", "Your Stripe balance is too low")
        return Settlement()

    trigger = StripePayoutTrigger(payout_ids=ids, stripe_conn_id=conn_for(localstripe), poll_interval=0.2)
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=0.3, decide=decide):
        event = _run_trigger(trigger)
    assert event["status"] == "failure"
    assert event["failures"] == [
        {
            "payout_id": failing,
            "status": "failed",
            "failure_code": "insufficient_funds",
            "failure_message": "Your Stripe balance is too low",
        }
    ]


def test_trigger_deadline(bank: LocalPayouts, conn_for: Any, localstripe: str) -> None:
    import time

    (pending,) = bank.create(1)
    event = _run_trigger(
        StripePayoutTrigger(
            payout_ids=[pending], stripe_conn_id=conn_for(localstripe), poll_interval=0.2, deadline=time.time() + 1
        )
    )
    assert event["status"] == "timeout" and pending in event["message"]


@pytest.mark.slow
def test_trigger_reports_an_unreachable_stripe_as_an_error_without_the_key(conn_for: Any) -> None:
    trigger = StripePayoutTrigger(
        payout_ids=["po_1", "po_2"], stripe_conn_id=conn_for(refused_url()), poll_interval=0.1
    )
    event = _run_trigger(trigger)
    assert event["status"] == "error"
    assert "api_connection_error" in event["message"] or "APIConnectionError" in event["message"]
    assert LOCAL_TEST_KEY not in json.dumps(event)


def test_trigger_serializes_ids_and_timings_but_never_the_key(conn_for: Any, localstripe: str) -> None:
    trigger = StripePayoutTrigger(
        payout_ids=["po_1"],
        stripe_conn_id=conn_for(localstripe),
        account_id="acct_1Connected",
        poll_interval=30,
        settle_period=60,
        deadline=1800000000.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_stripe.triggers.payouts.StripePayoutTrigger"
    assert set(kwargs) == {
        "payout_ids",
        "stripe_conn_id",
        "account_id",
        "poll_interval",
        "settle_period",
        "deadline",
    }
    dumped = json.dumps(kwargs)
    assert "sk_test" not in dumped and "whsec" not in dumped and "127.0.0.1" not in dumped
    assert StripePayoutTrigger(**kwargs).serialize() == (classpath, kwargs)


# -- deferrable: the sensor side -------------------------------------------------------------


def test_deferrable_sensor_polls_once_then_defers_carrying_the_settle_period(
    bank: LocalPayouts, conn_for: Any, localstripe: str
) -> None:
    conn_id = conn_for(localstripe)
    ids = bank.create(4)
    bank.set_status(ids[0], "paid")
    sensor = _sensor(conn_id, ids, deferrable=True, settle_period=30, poll_interval=5, timeout=600)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute({})
    trigger = info.value.trigger
    assert isinstance(trigger, StripePayoutTrigger)
    assert info.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["payout_ids"] == ids
    assert kwargs["poll_interval"] == 5 and kwargs["settle_period"] == 30

    for payout_id in ids:
        bank.set_status(payout_id, "paid")
    already_done = _sensor(conn_id, ids, deferrable=True)
    assert already_done.execute({})["count"] == 4, "no deferral when the first poll already succeeds"

    bank.set_status(ids[1], "failed", failure_code="account_closed")
    with pytest.raises(AirflowSkipException, match="account_closed"):
        _sensor(conn_id, ids, deferrable=True, soft_fail=True).execute({})


def test_execute_complete_handles_every_trigger_event(conn_for: Any, localstripe: str) -> None:
    from airflow_provider_stripe.compat import AirflowException, AirflowSensorTimeout

    sensor = _sensor(conn_for(localstripe), ["po_1"], deferrable=True)
    result = {"status": "paid", "count": 1, "payout_ids": ["po_1"]}
    assert sensor.execute_complete({}, {"status": "success", "count": 1}) == result
    failure = {"payout_id": "po_1", "status": "failed", "failure_code": "no_account", "failure_message": "No account"}
    with pytest.raises(AirflowFailException, match=r"po_1 is failed .*failure_code=no_account"):
        sensor.execute_complete({}, {"status": "failure", "failures": [failure]})
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, {"status": "timeout", "message": "1 of 1 payouts still not settled"})
    with pytest.raises(AirflowException, match="connection refused"):
        sensor.execute_complete({}, {"status": "error", "message": "connection refused"})


# -- settle period: a paid payout can still fail ---------------------------------------------


def _flips_to_failed(after: float) -> Settlement:
    failed = Settlement("failed", "account_closed", "The bank account has been closed")
    return Settlement(then=failed, then_after=after)


def test_settle_period_fails_a_paid_payout_that_flips_and_passes_one_that_stays_paid(
    bank: LocalPayouts, conn_for: Any, localstripe: str
) -> None:
    import time

    conn_id = conn_for(localstripe)
    flipping, staying = bank.create(2)
    decide = {flipping: _flips_to_failed(1.0), staying: Settlement()}
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=0.2, decide=lambda p: decide[p["id"]]) as bank_side:
        with pytest.raises(AirflowFailException) as info:
            _sensor(conn_id, [flipping], settle_period=timedelta(seconds=4)).execute({})
        assert bank_side.settled[flipping].status == "failed"
        result = _sensor(conn_id, [staying], settle_period=timedelta(seconds=2)).execute({})
        finished = time.time()
    message = str(info.value)
    assert f"{flipping} is failed after being paid (failure_code=account_closed" in message
    assert "payout_failure" in message and "create new payouts" in message
    paid = requests.get(f"{localstripe}/v1/payouts/{staying}", auth=(LOCAL_TEST_KEY, ""), timeout=5).json()
    assert paid["status"] == "paid" and result["payout_ids"] == [staying]
    assert finished >= paid["arrival_date"] + 2, "succeeded before the settle period after arrival_date"


def test_settle_period_in_reschedule_mode_needs_no_state_store(
    bank: LocalPayouts, conn_for: Any, localstripe: str
) -> None:
    conn_id = conn_for(localstripe)
    (payout_id,) = bank.create(1)
    with SettlementSimulator(localstripe, LOCAL_TEST_KEY, delay=0) as bank_side:
        while payout_id not in bank_side.settled:
            threading.Event().wait(0.05)
    # A reschedule builds a new sensor each time: Stripe's arrival_date is all it needs.
    assert not _sensor(conn_id, [payout_id], mode="reschedule", settle_period=1.5).poke({})
    threading.Event().wait(1.6)
    assert _sensor(conn_id, [payout_id], mode="reschedule", settle_period=1.5).poke({})


def test_trigger_settle_period_catches_the_flip_and_waits_for_the_rest(
    bank: LocalPayouts, conn_for: Any, localstripe: str
) -> None:
    import time

    conn_id = conn_for(localstripe)
    ids = bank.create(2)
    with SettlementSimulator(
        localstripe, LOCAL_TEST_KEY, delay=0.2, decide=lambda p: _flips_to_failed(1.0) if p["id"] == ids[0] else PAID
    ):
        event = _run_trigger(
            StripePayoutTrigger(payout_ids=ids, stripe_conn_id=conn_id, poll_interval=0.2, settle_period=4)
        )
    assert event["status"] == "failure"
    assert event["failures"] == [
        {
            "payout_id": ids[0],
            "status": "failed",
            "failure_code": "account_closed",
            "failure_message": "The bank account has been closed",
            "was_paid": True,
        }
    ]
    with pytest.raises(AirflowFailException, match=f"{ids[0]} is failed after being paid"):
        _sensor(conn_id, ids, deferrable=True).execute_complete({}, event)
    event = _run_trigger(
        StripePayoutTrigger(payout_ids=[ids[1]], stripe_conn_id=conn_id, poll_interval=0.2, settle_period=3)
    )
    finished = time.time()
    paid = requests.get(f"{localstripe}/v1/payouts/{ids[1]}", auth=(LOCAL_TEST_KEY, ""), timeout=5).json()
    assert event["status"] == "success" and finished >= paid["arrival_date"] + 3
