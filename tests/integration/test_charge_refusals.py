"""Definitive refusals get a fresh idempotency key; lost answers keep theirs.

Stripe saves the first answer for an idempotency key -- errors included -- and replays
it. Behind the fault proxy (which implements exactly that) in front of the recording stub
or a real localstripe, with Airflow's task state store faked in memory:

* a declined charge fails the task with a non-retryable ``AirflowFailException`` naming
  the Stripe error; clearing it (the next try) charges under a fresh key -- with a state
  store directly, without one after meeting Stripe's replayed refusal -- and clearing it
  again replays that charge instead of charging twice;
* a real decline by localstripe, then a new card after the clear: the fresh key means the
  changed parameters are no ``idempotency_error``;
* a lost answer keeps the key (retryable error, exactly one charge), also when it is the
  fresh key after a refusal, with or without a store;
* an explicit ``idempotency_key`` moves to ``<key>-retry<n>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.compat import AirflowFailException
from airflow_provider_stripe.errors import StripeRequestError
from airflow_provider_stripe.operators.charges import StripeCreateChargeOperator
from airflow_provider_stripe.payouts.keys import RunIdentity
from airflow_provider_stripe.payouts.ledger import GENERATION_STATE_PREFIX
from tests.integration.charge_helpers import FakeChargesApi, decline_first
from tests.integration.payout_helpers import MemoryStateStore
from tests.integration.stripe_task_context import TEST_KEY, stripe_connection, task_context
from tests.servers.fault_proxy import FaultKind, FaultPlan, FaultProxy, plan
from tests.servers.stub_stripe import StubServer

pytestmark = pytest.mark.timeout(60)

ProxyFactory = Callable[..., FaultProxy]
POST_ONLY = frozenset({"POST"})
GENERATION = GENERATION_STATE_PREFIX + "charges.create"


def _context(try_number: int, store: MemoryStateStore | None) -> Any:
    extra: dict[str, Any] = {"task_state_store": store} if store is not None else {}
    return task_context(task_id="charge", try_number=try_number, **extra)


def _charge(conn_id: str, **kwargs: Any) -> StripeCreateChargeOperator:
    params: dict[str, Any] = {"amount": 2500, "currency": "eur", "customer": "cus_1", **kwargs}
    return StripeCreateChargeOperator(task_id="charge", stripe_conn_id=conn_id, **params)


@pytest.mark.parametrize("with_store", [True, False], ids=["state-store", "no-store"])
def test_declined_charge_fails_for_good_and_a_clear_charges_under_a_fresh_key(
    stub_stripe: StubServer, fault_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch, with_store: bool
) -> None:
    api = FakeChargesApi(decline_first())
    stub_stripe.responder = api
    proxy = fault_proxy(upstream_url=stub_stripe.url)
    conn_id = stripe_connection(monkeypatch, proxy.url)
    store = MemoryStateStore() if with_store else None

    with pytest.raises(AirflowFailException) as caught:
        _charge(conn_id).execute(_context(1, store))
    message = str(caught.value)
    assert "charges.create failed" in message and "code=card_declined" in message and "http_status=402" in message
    assert "clear the task" in message and TEST_KEY not in message
    cause = caught.value.__cause__
    assert isinstance(cause, StripeRequestError) and cause.decline_code == "insufficient_funds"
    if store is not None:
        assert store.get(GENERATION) == 1, "the fresh generation is stored before the task fails"

    # The customer topped up; the user clears the task (Airflow's try number keeps counting).
    result = _charge(conn_id).execute(_context(2, store))
    assert [c["id"] for c in api.charges] == [result["id"]]
    first_key, second_key = api.keys
    assert second_key == result["idempotency_key"] != first_key
    identity = RunIdentity.from_context(task_context(task_id="charge"))
    assert second_key == identity.idempotency_key("charges.create", "", 1)
    # Without a store, try 2 met the saved refusal first (a replay) and walked on.
    assert proxy.stats["replayed"] == (0 if with_store else 1)

    # Clearing the succeeded task again replays that charge: nothing new reaches the server.
    again = _charge(conn_id).execute(_context(3, store))
    assert again["id"] == result["id"] and len(api.creates) == 2
    assert proxy.stats["replayed"] == (1 if with_store else 3)


def test_real_decline_then_a_new_card_after_the_clear(
    localstripe: str, fault_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = fault_proxy()  # Stripe's idempotency semantics in front of localstripe
    conn_id = stripe_connection(monkeypatch, proxy.url)
    store = MemoryStateStore()

    with pytest.raises(AirflowFailException, match="code=card_declined"):
        _charge(conn_id, customer=None, source="pm_card_chargeCustomerFail").execute(_context(1, store))
    # The customer's card was replaced (a templated source, say) and the task cleared:
    # other parameters under the old key would be an idempotency_error; the fresh key is not.
    result = _charge(conn_id, customer=None, source="pm_card_visa").execute(_context(2, store))
    assert result["status"] == "succeeded"
    assert proxy.stats["idempotency_mismatch"] == 0 and proxy.stats["replayed"] == 0

    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe})
    charges = client.v1.charges.list({"limit": 100}).data
    assert sorted((c.status, c.amount) for c in charges) == [("failed", 2500), ("succeeded", 2500)]


def test_lost_answer_keeps_the_key_and_charges_once(
    localstripe: str, fault_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = fault_proxy(plan(FaultKind.LOST_RESPONSE, methods=POST_ONLY, path_prefix="/v1/charges"))
    conn_id = stripe_connection(monkeypatch, proxy.url, max_network_retries=0)
    store = MemoryStateStore()
    op: Callable[[], StripeCreateChargeOperator] = lambda: _charge(conn_id, customer=None, source="pm_card_visa")  # noqa: E731

    with pytest.raises(StripeRequestError, match=r"charges\.create failed") as caught:
        op().execute(_context(1, store))
    assert not isinstance(caught.value, AirflowFailException) and not caught.value.is_definitive
    assert store.values == {}, "an unknown outcome does not move the key"

    retried = op().execute(_context(2, store))
    posts = [r for r in proxy.records if r.method == "POST"]
    assert [r.outcome for r in posts] == ["lost_after_forwarded", "replayed"]
    assert posts[0].idempotency_key == posts[1].idempotency_key == retried["idempotency_key"]
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe})
    assert [c.id for c in client.v1.charges.list({"limit": 100}).data] == [retried["id"]]


@pytest.mark.parametrize("with_store", [True, False], ids=["state-store", "no-store"])
def test_lost_answer_under_a_fresh_key(
    stub_stripe: StubServer, fault_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch, with_store: bool
) -> None:
    api = FakeChargesApi(decline_first())
    stub_stripe.responder = api
    # Refused at try 1; at try 2 the request under the fresh key is executed but its answer
    # lost (without a store, try 2 first meets the replayed refusal).
    script = (None, FaultKind.LOST_RESPONSE) if with_store else (None, None, FaultKind.LOST_RESPONSE)
    proxy = fault_proxy(FaultPlan(script=script, methods=POST_ONLY), upstream_url=stub_stripe.url)
    conn_id = stripe_connection(monkeypatch, proxy.url, max_network_retries=0)
    store = MemoryStateStore() if with_store else None

    with pytest.raises(AirflowFailException, match="card_declined"):
        _charge(conn_id).execute(_context(1, store))
    with pytest.raises(StripeRequestError) as caught:  # retryable: the outcome is unknown
        _charge(conn_id).execute(_context(2, store))
    assert not isinstance(caught.value, AirflowFailException)
    assert len(api.charges) == 1, "the lost request was executed"

    result = _charge(conn_id).execute(_context(3, store))  # Airflow's retry
    assert [c["id"] for c in api.charges] == [result["id"]], "charged exactly once"
    assert len(api.creates) == 2 and api.keys[1] == result["idempotency_key"]
    assert proxy.stats["replayed"] == (1 if with_store else 3)


def test_explicit_key_moves_to_a_suffixed_key_after_a_refusal(
    stub_stripe: StubServer, fault_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeChargesApi(decline_first())
    stub_stripe.responder = api
    conn_id = stripe_connection(monkeypatch, fault_proxy(upstream_url=stub_stripe.url).url)
    store = MemoryStateStore()
    with pytest.raises(AirflowFailException):
        _charge(conn_id, idempotency_key="order-42").execute(_context(1, store))
    result = _charge(conn_id, idempotency_key="order-42").execute(_context(2, store))
    assert api.keys == ["order-42", "order-42-retry1"] == ["order-42", result["idempotency_key"]]
