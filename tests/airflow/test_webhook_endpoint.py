"""The Stripe webhook endpoint inside a real ``airflow api-server``.

The example DAG file is serialized first (as ``airflow dags reserialize`` does) so the assets
``stripe://events/payout.paid`` / ``payout.failed`` referenced by
``dags_examples/stripe_payout_events.py`` exist. The happy path is end to end: localstripe
itself delivers the signed ``payout.paid`` webhook when a payout is created paid. Refusals
use hand-signed copies of real localstripe events. Asset events are read from the metadata DB.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_stripe.compat import AIRFLOW_VERSION
from airflow_provider_stripe.events.signature import SIGNATURE_HEADER, sign_payload
from tests import airflow_env
from tests.airflow.api_server import ApiServer, run_api_server
from tests.servers.localstripe_server import TEST_API_KEY, register_webhook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CONN_ID = "stripe_webhook_test"
OLD_SECRET = "whsec_OldRotatedSecret0001"
SECRET = "whsec_CurrentSecret0002"
GENERIC_400 = {"detail": "Invalid Stripe webhook request."}


def serialize_example_dag() -> None:
    """Parse ``stripe_payout_events.py`` and store it as the dag-processor would (its assets included).

    In-process and for this one file: the same Airflow code as ``airflow dags reserialize``
    (``DagBag`` + ``sync_bag_to_db``), without parsing everybody's DAGs in a subprocess.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    from airflow_provider_stripe.compat import dagbag_module

    DagBag, sync_bag_to_db = dagbag_module().DagBag, dagbag_module().sync_bag_to_db
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    # Airflow 3.1's DagBag takes no bundle_name (sync_bag_to_db gets it below).
    bundle = {"bundle_name": "dags-folder"} if AIRFLOW_VERSION >= (3, 2) else {}
    bag = DagBag(
        dag_folder=str(airflow_env.DAGS_FOLDER / "stripe_payout_events.py"),
        bundle_path=airflow_env.DAGS_FOLDER,
        **bundle,
    )
    assert not bag.import_errors, bag.import_errors
    assert {"stripe_payout_events_polled", "stripe_payout_events_webhook"} <= set(bag.dag_ids)
    with create_session() as session:
        sync_bag_to_db(bag, "dags-folder", None, session=session)


@pytest.fixture(scope="module")
def server(localstripe_url: str) -> Iterator[ApiServer]:
    airflow_env.migrate()
    serialize_example_dag()
    conns = {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": {
            "conn_type": "stripe",
            # Two secrets, as during a rotation: localstripe signs with the second.
            "extra": {"api_key": TEST_API_KEY, "webhook_secret": f"{OLD_SECRET},{SECRET}", "base_url": localstripe_url},
        },
        "AIRFLOW_CONN_NOT_STRIPE": {"conn_type": "http", "password": "sk_test_x", "extra": {"webhook_secret": SECRET}},
    }
    with run_api_server(env={k: json.dumps(v) for k, v in conns.items()}) as api:
        yield api


@pytest.fixture
def webhook_url(server: ApiServer) -> str:
    return f"{server.url}/stripe/webhooks/{CONN_ID}"


def recorded(event_id: str) -> list[dict[str, Any]]:
    """Asset events whose payload is this Stripe event: (asset URI, extra)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        ).all()
    return [{"uri": uri, **extra} for uri, extra in rows if (extra.get("payload") or {}).get("event_id") == event_id]


def wait_recorded(event_id: str, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rows := recorded(event_id):
            return rows
        time.sleep(0.25)
    return []


def paid_payout_event(localstripe: str) -> dict[str, Any]:
    """Create a payout as paid in localstripe; return its real ``payout.paid`` event."""
    auth = (TEST_API_KEY, "")
    payout = requests.post(
        f"{localstripe}/v1/payouts", data={"amount": 500, "currency": "eur", "status": "paid"}, auth=auth, timeout=5
    ).json()
    events = requests.get(f"{localstripe}/v1/events", params={"type": "payout.paid"}, auth=auth, timeout=5).json()
    return next(e for e in events["data"] if e["data"]["object"]["id"] == payout["id"])


def post(url: str, body: bytes, signature: str | None, **kwargs: Any) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return requests.post(url, data=body, headers=headers, timeout=15, **kwargs)


def test_stripe_delivery_is_recorded_once(server: ApiServer, webhook_url: str, localstripe: str) -> None:
    register_webhook(localstripe, "airflow_webhook_test", webhook_url, SECRET, events=["payout.paid"])
    event = paid_payout_event(localstripe)  # localstripe now POSTs it, signed, to the endpoint

    rows = wait_recorded(event["id"])
    assert [r["uri"] for r in rows] == ["stripe://events/payout.paid"]
    assert rows[0]["from_webhook"] is True and rows[0]["conn_id"] == CONN_ID
    assert rows[0]["payload"] == {
        "event_id": event["id"],
        "type": "payout.paid",
        "created": event["created"],
        "livemode": False,
        "account": None,
        "object_id": event["data"]["object"]["id"],
        "object_type": "payout",
    }

    # Redelivery of the same event (freshly signed, as Stripe's retries are): nothing new.
    body = json.dumps(event).encode()
    again = post(webhook_url, body, sign_payload(body, SECRET))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(recorded(event["id"])) == 1

    log = server.log_tail(200_000)
    assert SECRET not in log and OLD_SECRET not in log and TEST_API_KEY not in log


def test_refusals_record_nothing(server: ApiServer, webhook_url: str, localstripe: str) -> None:
    event = paid_payout_event(localstripe)
    body = json.dumps(event).encode()
    cases = {
        "unsigned": post(webhook_url, body, None),
        "wrong secret": post(webhook_url, body, sign_payload(body, "whsec_NotTheSecret")),
        "tampered body": post(webhook_url, body.replace(b"500", b"900"), sign_payload(body, SECRET)),
        "stale timestamp": post(webhook_url, body, sign_payload(body, SECRET, timestamp=int(time.time()) - 600)),
        "unknown connection": post(f"{server.url}/stripe/webhooks/nope", body, sign_payload(body, SECRET)),
        "not a stripe connection": post(f"{server.url}/stripe/webhooks/not_stripe", body, sign_payload(body, SECRET)),
        "signed non-event": post(webhook_url, b"[1, 2]", sign_payload(b"[1, 2]", SECRET)),
    }
    for name, resp in cases.items():
        assert (resp.status_code, resp.json()) == (400, GENERIC_400), name

    oversized = body + b" " * (256 * 1024)
    too_big = post(webhook_url, oversized, sign_payload(oversized, SECRET))
    assert too_big.status_code == 413

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to trust
        yield body
        for _ in range(40):
            yield b" " * 8192

    chunked = requests.post(
        webhook_url,
        data=chunks(),
        headers={SIGNATURE_HEADER: sign_payload(body + b" " * 8192 * 40, SECRET)},
        timeout=15,
    )
    assert chunked.status_code == 413

    assert recorded(event["id"]) == []
    # The same event, correctly signed, still goes through afterwards.
    ok = post(webhook_url, body, sign_payload(body, SECRET))
    assert ok.status_code == 200 and ok.json()["status"] == "recorded"
    assert len(recorded(event["id"])) == 1


def test_connection_stored_in_the_metadata_db(server: ApiServer, localstripe: str) -> None:
    """Connections usually live in the DB, not in env vars: the endpoint finds those too."""
    extra = {"api_key": TEST_API_KEY, "webhook_secret": SECRET, "base_url": localstripe}
    created = server.api(
        "POST",
        "/api/v2/connections",
        json={"connection_id": "stripe_in_db", "conn_type": "stripe", "extra": json.dumps(extra)},
    )
    assert created.status_code == 201, created.text
    event = paid_payout_event(localstripe)
    body = json.dumps(event).encode()
    resp = post(f"{server.url}/stripe/webhooks/stripe_in_db", body, sign_payload(body, SECRET))
    assert resp.status_code == 200 and resp.json()["status"] == "recorded", resp.text
    assert [r["conn_id"] for r in recorded(event["id"])] == ["stripe_in_db"]


def test_event_type_without_asset_is_acknowledged_not_recorded(webhook_url: str) -> None:
    event: dict[str, Any] = {
        "id": "evt_NoAssetForThisType01",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    body = json.dumps(event).encode()
    resp = post(webhook_url, body, sign_payload(body, SECRET))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert recorded(event["id"]) == []
