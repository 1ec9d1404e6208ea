"""Charge operators against a real localstripe, a recording stub and a fault-injecting proxy.

* create (authorize) -> capture (partial) -> refund (partial) on localstripe, checked in
  localstripe's own state;
* every invalid input fails before any request: the recording stub sees zero requests;
* ``dry_run`` sends nothing; live keys are refused unless the connection allows them;
* the idempotency key is stable across retries of one task instance, so a retry after a
  lost response replays the first charge instead of charging twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import stripe

from airflow_provider_stripe.compat import AirflowFailException
from airflow_provider_stripe.errors import LiveModeNotAllowedError, StripeInputError, StripeRequestError
from airflow_provider_stripe.operators.charges import (
    StripeCaptureChargeOperator,
    StripeCreateChargeOperator,
    StripeRefundChargeOperator,
)
from airflow_provider_stripe.payouts.keys import RunIdentity
from tests.integration.stripe_task_context import LIVE_KEY, TEST_KEY, stripe_connection, task_context
from tests.servers.fault_proxy import FaultKind, FaultProxy, plan
from tests.servers.stub_stripe import RecordedRequest, StubResponse, StubServer

pytestmark = pytest.mark.timeout(60)


def _localstripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": url})


def test_create_capture_partial_refund_on_localstripe(localstripe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = stripe_connection(monkeypatch, localstripe)
    ctx = task_context()
    created = StripeCreateChargeOperator(
        task_id="authorize",
        stripe_conn_id=conn,
        amount=2000,
        currency="EUR",
        source="pm_card_visa",
        capture=False,
        description="Order A-1001",
        metadata={"order_id": "A-1001", "attempt": 1},
    ).execute(ctx)
    assert created["id"].startswith("ch_")
    assert (created["amount"], created["currency"], created["captured"], created["livemode"]) == (
        2000,
        "eur",
        False,
        False,
    )
    assert created["idempotency_key"] == RunIdentity.from_context(ctx).idempotency_key("charges.create", "")

    captured = StripeCaptureChargeOperator(
        task_id="capture", stripe_conn_id=conn, charge_id=created["id"], amount=1500
    ).execute(ctx)
    assert (captured["id"], captured["captured"]) == (created["id"], True)

    refund = StripeRefundChargeOperator(
        task_id="refund", stripe_conn_id=conn, charge_id=created["id"], amount=500, metadata={"ticket": "T-9"}
    ).execute(ctx)
    assert refund["id"].startswith("re_")
    assert (refund["charge"], refund["amount"], refund["currency"], refund["status"]) == (
        created["id"],
        500,
        "eur",
        "succeeded",
    )
    assert refund["refunded"] is False  # partial: the charge is not fully refunded

    # localstripe's own state: captured, 500 released at capture + 500 refunded.
    charge = _localstripe_client(localstripe).v1.charges.retrieve(created["id"])
    assert charge.captured is True
    assert charge.amount_refunded == 1000
    assert charge.refunded is False
    assert charge.metadata.to_dict() == {"order_id": "A-1001", "attempt": "1"}

    # Every result is small, JSON-safe and holds no secret.
    for result in (created, captured, refund):
        text = json.dumps(result)
        assert TEST_KEY not in text and "whsec_" not in text
        assert len(result) <= 15


BadInput = tuple[type, dict[str, Any], str]
BAD_INPUTS: list[BadInput] = [
    (StripeCreateChargeOperator, {"amount": 12.5, "currency": "eur", "source": "pm_card_visa"}, "amount"),
    (StripeCreateChargeOperator, {"amount": "1250", "currency": "eur", "source": "pm_card_visa"}, "amount"),
    (StripeCreateChargeOperator, {"amount": 49, "currency": "usd", "source": "pm_card_visa"}, "amount"),
    (StripeCreateChargeOperator, {"amount": 10**8, "currency": "eur", "source": "pm_card_visa"}, "amount"),
    (StripeCreateChargeOperator, {"amount": 1000, "currency": "euro", "source": "pm_card_visa"}, "currency"),
    (StripeCreateChargeOperator, {"amount": 1000, "currency": "eur"}, "source"),
    (StripeCreateChargeOperator, {"amount": 1000, "currency": "eur", "customer": "ch_oops"}, "customer"),
    (
        StripeCreateChargeOperator,
        {"amount": 1000, "currency": "eur", "source": "pm_card_visa", "metadata": {"k": None}},
        "metadata",
    ),
    (
        StripeCreateChargeOperator,
        {"amount": 1000, "currency": "eur", "source": "pm_card_visa", "statement_descriptor_suffix": "A*B"},
        "statement_descriptor_suffix",
    ),
    (
        StripeCreateChargeOperator,
        {"amount": 1000, "currency": "eur", "source": "pm_card_visa", "receipt_email": "not-an-email"},
        "receipt_email",
    ),
    (
        StripeCreateChargeOperator,
        {"amount": 1000, "currency": "eur", "source": "pm_card_visa", "application_fee_amount": 1001},
        "application_fee_amount",
    ),
    (
        StripeCreateChargeOperator,
        {"amount": 1000, "currency": "eur", "source": "pm_card_visa", "transfer_data": {"destination": "cus_1"}},
        "transfer_data.destination",
    ),
    (StripeCaptureChargeOperator, {"charge_id": "{{ ti.xcom_pull('x') }}"}, "charge_id"),
    (StripeCaptureChargeOperator, {"charge_id": "ch_1", "amount": 0}, "amount"),
    (StripeRefundChargeOperator, {"charge_id": "ch_1", "amount": 5.5}, "amount"),
    (StripeRefundChargeOperator, {"charge_id": "ch_1", "reason": "customer asked"}, "reason"),
    (StripeRefundChargeOperator, {"charge_id": "", "amount": 100}, "charge_id"),
]


@pytest.mark.parametrize(("operator", "kwargs", "field"), BAD_INPUTS)
def test_invalid_input_sends_nothing(
    operator: type, kwargs: dict[str, Any], field: str, stub_stripe: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = stripe_connection(monkeypatch, stub_stripe.url)
    op = operator(task_id="bad", stripe_conn_id=conn, **kwargs)
    with pytest.raises(StripeInputError) as info:
        op.execute(task_context())
    assert info.value.field == field
    assert stub_stripe.requests == []


@pytest.mark.parametrize("api_key", [TEST_KEY, LIVE_KEY])
def test_dry_run_sends_nothing(api_key: str, stub_stripe: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = stripe_connection(monkeypatch, stub_stripe.url, api_key=api_key)
    common: dict[str, Any] = {"stripe_conn_id": conn, "dry_run": True}
    results = [
        StripeCreateChargeOperator(
            task_id="c", amount=2000, currency="eur", customer="cus_123", metadata={"n": 1}, **common
        ).execute(task_context()),
        StripeCaptureChargeOperator(task_id="k", charge_id="ch_123", amount=1500, **common).execute(task_context()),
        StripeRefundChargeOperator(task_id="r", charge_id="ch_123", reason="duplicate", **common).execute(
            task_context()
        ),
    ]
    assert stub_stripe.requests == []
    assert [r["operation"] for r in results] == ["charges.create", "charges.capture", "refunds.create"]
    assert all(r["dry_run"] is True for r in results)
    assert results[0]["params"] == {"amount": 2000, "currency": "eur", "customer": "cus_123", "metadata": {"n": "1"}}
    live = api_key == LIVE_KEY
    assert all(r["livemode"] is live and r["live_mode_allowed"] is not live for r in results)
    assert api_key not in json.dumps(results)


def _charge_responder(livemode: bool) -> Callable[[RecordedRequest], StubResponse | None]:
    def respond(req: RecordedRequest) -> StubResponse | None:
        if req.method == "POST" and req.path == "/v1/charges":
            form = req.form
            body = {
                "id": "ch_stub1",
                "object": "charge",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "status": "succeeded",
                "paid": True,
                "captured": True,
                "refunded": False,
                "amount_refunded": 0,
                "livemode": livemode,
                "customer": form.get("customer"),
            }
            return StubResponse(200, body)
        return None

    return respond


def test_live_key_refused_unless_connection_allows_it(stub_stripe: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    stub_stripe.responder = _charge_responder(livemode=True)
    kwargs: dict[str, Any] = {"amount": 5000, "currency": "usd", "customer": "cus_live"}
    refused = stripe_connection(monkeypatch, stub_stripe.url, api_key=LIVE_KEY)
    for op in (
        StripeCreateChargeOperator(task_id="c", stripe_conn_id=refused, **kwargs),
        StripeCaptureChargeOperator(task_id="k", stripe_conn_id=refused, charge_id="ch_1"),
        StripeRefundChargeOperator(task_id="r", stripe_conn_id=refused, charge_id="ch_1"),
    ):
        with pytest.raises(LiveModeNotAllowedError, match="allow_live_mode"):
            op.execute(task_context())
    assert stub_stripe.requests == []

    allowed = stripe_connection(monkeypatch, stub_stripe.url, api_key=LIVE_KEY, allow_live_mode=True)
    result = StripeCreateChargeOperator(task_id="c", stripe_conn_id=allowed, **kwargs).execute(task_context())
    assert (result["id"], result["livemode"], result["amount"]) == ("ch_stub1", True, 5000)
    (req,) = stub_stripe.requests
    assert req.form["amount"] == "5000"


def test_headers_explicit_key_and_connected_account(stub_stripe: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    stub_stripe.responder = _charge_responder(livemode=False)
    conn = stripe_connection(monkeypatch, stub_stripe.url)
    base: dict[str, Any] = {"stripe_conn_id": conn, "amount": 1000, "currency": "eur", "customer": "cus_1"}
    StripeCreateChargeOperator(task_id="c", **base).execute(task_context())
    StripeCreateChargeOperator(task_id="c", account_id="acct_1Shop", idempotency_key="order-42", **base).execute(
        task_context()
    )
    first, second = stub_stripe.requests
    derived = RunIdentity.from_context(task_context()).idempotency_key("charges.create", "")
    assert first.headers["Idempotency-Key"] == derived
    assert "Stripe-Account" not in first.headers
    assert second.headers["Idempotency-Key"] == "order-42"
    assert second.headers["Stripe-Account"] == "acct_1Shop"


def test_retry_of_the_same_task_never_charges_twice(
    fault_proxy: Callable[..., FaultProxy], localstripe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first attempt's response is lost after localstripe created the charge.
    proxy = fault_proxy(faults=plan(FaultKind.LOST_RESPONSE, methods=frozenset({"POST"}), path_prefix="/v1/charges"))
    conn = stripe_connection(monkeypatch, proxy.url, max_network_retries=0)

    def attempt(try_number: int, map_index: int = -1) -> dict[str, Any]:
        op = StripeCreateChargeOperator(
            task_id="charge", stripe_conn_id=conn, amount=2500, currency="eur", source="pm_card_visa"
        )
        return op.execute(task_context(task_id="charge", try_number=try_number, map_index=map_index))

    with pytest.raises(StripeRequestError, match=r"charges\.create failed"):
        attempt(1)
    retried = attempt(2)  # Airflow's retry: same dag_id/run_id/task_id/map_index
    assert retried["amount"] == 2500

    charges = _localstripe_client(localstripe).v1.charges.list({"limit": 100}).data
    assert [c.id for c in charges] == [retried["id"]]
    posts = [r for r in proxy.records if r.method == "POST"]
    assert [r.outcome for r in posts] == ["lost_after_forwarded", "replayed"]
    assert posts[0].idempotency_key == posts[1].idempotency_key == retried["idempotency_key"]

    # Another mapped instance of the same task is a different charge.
    other = attempt(1, map_index=1)
    assert other["id"] != retried["id"]
    assert len(_localstripe_client(localstripe).v1.charges.list({"limit": 100}).data) == 2


def test_a_stripe_test_token_on_the_local_server_says_what_to_use(
    localstripe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe's docs teach ``tok_visa``; localstripe answers it a bare "Bad request". The message says what works."""
    conn = stripe_connection(monkeypatch, localstripe)
    op = StripeCreateChargeOperator(
        task_id="charge", stripe_conn_id=conn, amount=2000, currency="eur", source="tok_visa"
    )
    with pytest.raises(AirflowFailException) as caught:
        op.execute(task_context(task_id="charge"))
    message = str(caught.value)
    assert "tok_visa" in message and "pm_card_visa" in message and "http_status=400" in message, message
    assert _localstripe_client(localstripe).v1.charges.list({"limit": 100}).data == []
