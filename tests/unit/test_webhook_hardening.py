"""The webhook endpoint answers a bare 400 to every bad request, never 500, and cheaply (issue 8).

The FastAPI app is the one the plugin mounts; connections are Airflow env-var connections and
``record_event`` is replaced by a recorder, so no database is needed. On the code before the
fix: a malformed ``webhook_secret`` and ``"created": 1e400`` gave 500, junk headers looked the
connection up, ``STRIPE_RT`` matched ``stripe_rt``'s env var, and ``"payout.paid\\n"`` passed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from airflow_provider_stripe.events import endpoint as webhook_app
from airflow_provider_stripe.events.signature import SIGNATURE_HEADER, sign_payload

SECRET = "whsec_UnitSecret0001"
GENERIC_400 = {"detail": "Invalid Stripe webhook request."}


def event(**fields: Any) -> bytes:
    doc = {"id": "evt_1Unit", "object": "event", "type": "payout.paid", "created": 1700000000, "livemode": False}
    doc.update(fields)
    doc.setdefault("data", {"object": {"id": "po_1", "object": "payout"}})
    return json.dumps(doc).encode()


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, webhook_secret: Any = SECRET) -> None:
    extra = {"api_key": "sk_test_51Unit", "webhook_secret": webhook_secret}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "stripe", "extra": extra}))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(conn_id: str, summary: dict[str, Any]) -> dict[str, Any]:
        calls.append((conn_id, summary))
        return {"status": "recorded", "event_id": summary["event_id"]}

    monkeypatch.setattr(webhook_app, "record_event", record)
    return calls


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection look-up the endpoint makes."""
    from airflow_provider_stripe.hooks.stripe import StripeHook

    seen: list[str] = []
    original = StripeHook.get_connection

    def spy(cls: Any, conn_id: str) -> Any:
        seen.append(conn_id)
        return original.__func__(cls, conn_id)  # type: ignore[attr-defined]

    monkeypatch.setattr(StripeHook, "get_connection", classmethod(spy))
    return seen


def post(conn_id: str, body: bytes, header: str | None) -> Any:
    client = TestClient(webhook_app.create_webhook_app(), raise_server_exceptions=False)
    headers = {"content-type": "application/json"}
    if header is not None:
        headers[SIGNATURE_HEADER] = header
    return client.post(f"/webhooks/{conn_id}", content=body, headers=headers)


def assert_bare_400(response: Any, recorded: list[Any]) -> None:
    assert (response.status_code, response.json()) == (400, GENERIC_400)
    assert not recorded


def test_a_good_delivery_is_recorded(monkeypatch: pytest.MonkeyPatch, recorded: list[Any]) -> None:
    connection(monkeypatch, "stripe_unit")
    body = event()
    response = post("stripe_unit", body, sign_payload(body, SECRET))
    assert response.status_code == 200, response.text
    assert recorded == [("stripe_unit", recorded[0][1])] and recorded[0][1]["type"] == "payout.paid"


@pytest.mark.parametrize("bad_secret", ["[whsec_a", {"a": "whsec_a"}, ["whsec_a", 5], 7])
def test_a_malformed_webhook_secret_is_a_bare_400(
    monkeypatch: pytest.MonkeyPatch, recorded: list[Any], bad_secret: Any
) -> None:
    connection(monkeypatch, "stripe_unit", webhook_secret=bad_secret)
    body = event()
    assert_bare_400(post("stripe_unit", body, sign_payload(body, SECRET)), recorded)


@pytest.mark.parametrize(
    "body",
    [
        event(created=1e400),
        b'{"id": "evt_1", "type": "payout.paid", "created": 1e400}',
        event(type="payout.paid\n"),
        event(type="Payout.Paid"),
        event(type="payout"),
        event(type="payout.*"),
        event(type="../payout.paid"),
        event(id="evt_1\n"),
        event(id=5),
    ],
)
def test_signed_bodies_stripe_never_sends_are_a_bare_400(
    monkeypatch: pytest.MonkeyPatch, recorded: list[Any], body: bytes
) -> None:
    connection(monkeypatch, "stripe_unit")
    assert_bare_400(post("stripe_unit", body, sign_payload(body, SECRET)), recorded)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "junk",
        "t=abc,v1=00",
        "t=1700000000",
        f"t={int(time.time()) - 3600},v1={'0' * 64}",  # stale
        f"t={int(time.time()) + 3600},v1={'0' * 64}",  # future
    ],
)
def test_junk_headers_cost_no_connection_lookup(
    monkeypatch: pytest.MonkeyPatch, recorded: list[Any], lookups: list[str], header: str | None
) -> None:
    connection(monkeypatch, "stripe_unit")
    assert_bare_400(post("stripe_unit", event(), header), recorded)
    assert lookups == []


def test_a_stale_but_authentic_signature_costs_no_lookup(
    monkeypatch: pytest.MonkeyPatch, recorded: list[Any], lookups: list[str]
) -> None:
    connection(monkeypatch, "stripe_unit")
    body = event()
    assert_bare_400(post("stripe_unit", body, sign_payload(body, SECRET, timestamp=int(time.time()) - 301)), recorded)
    assert lookups == []


def test_the_conn_id_is_used_exactly(monkeypatch: pytest.MonkeyPatch, recorded: list[Any]) -> None:
    """``AIRFLOW_CONN_STRIPE_RT`` is connection ``stripe_rt``; ``STRIPE_RT`` is not another name for it."""
    connection(monkeypatch, "stripe_rt")
    body = event()
    assert_bare_400(post("STRIPE_RT", body, sign_payload(body, SECRET)), recorded)
    assert_bare_400(post("Stripe_Rt", body, sign_payload(body, SECRET)), recorded)
    assert post("stripe_rt", body, sign_payload(body, SECRET)).status_code == 200
    assert [conn_id for conn_id, _ in recorded] == ["stripe_rt"]
