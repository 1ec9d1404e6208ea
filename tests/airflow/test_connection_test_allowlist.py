"""The Test button can no longer send a stored Stripe key to a server the admin did not allow (issue 8).

Against a real ``airflow api-server``: a ``stripe`` connection is stored with its key, then a
user who may test connections posts what the UI posts for the row's Test action, with the
masked extra (``"api_key": "***"``) and a ``base_url`` of their own. Airflow merges the stored
secrets back in (``base_url`` lives in the extra, so its host/port guard never sees it); before
the allowlist the stored key went to that server. The "attacker" is a real HTTP listener on
127.0.0.1 (the recording stub) that records every request it receives.

The API server runs with ``[stripe] allowed_base_urls`` naming localstripe's exact port only,
as an admin would list one server, so the attacker's loopback port is not allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_stripe.connection.config import ALLOWED_BASE_URLS_ENV
from airflow_provider_stripe.constants import CONN_TYPE
from tests.airflow.api_server import ApiServer, run_api_server
from tests.servers.stub_stripe import StubServer, run_stub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TEST_PATH = "/api/v2/connections/test"
STORED_KEY = "sk_test_51StoredVictimKey0a1b2c"
CONN_ID = "stripe_victim"


@pytest.fixture(scope="module")
def attacker() -> Iterator[StubServer]:
    with run_stub() as stub:
        yield stub


@pytest.fixture(scope="module")
def server(localstripe_url: str) -> Iterator[ApiServer]:
    with run_api_server(env={ALLOWED_BASE_URLS_ENV: localstripe_url}) as api:
        extra = {"api_key": STORED_KEY, "webhook_secret": "whsec_victim", "base_url": localstripe_url}
        created = api.api(
            "POST",
            "/api/v2/connections",
            json={"connection_id": CONN_ID, "conn_type": CONN_TYPE, "extra": json.dumps(extra)},
        )
        assert created.status_code == 201, created.text
        yield api


def ui_test(server: ApiServer, base_url: str) -> dict[str, Any]:
    """What the UI posts for the row's Test action, secrets masked, with another base_url."""
    extra = {"api_key": "***", "webhook_secret": "***", "base_url": base_url}
    body = {"connection_id": CONN_ID, "conn_type": CONN_TYPE, "extra": json.dumps(extra), "port": 0, "host": ""}
    answer = server.api("POST", TEST_PATH, json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_allowed_server_gets_the_stored_key(server: ApiServer, localstripe_url: str) -> None:
    """The control: the same request with the allowed base URL runs the ping with the stored key."""
    result = ui_test(server, localstripe_url)
    assert result["status"] is True, result


@pytest.mark.parametrize(
    "attack",
    [
        "http://127.0.0.1:{port}",
        "http://localhost:{port}",
        "http://attacker.example\\@127.0.0.1:{port}",
        "http://127.0.0.1:{port}\\@127.0.0.1:{allowed}",
    ],
)
def test_a_base_url_not_allowed_gets_nothing(
    server: ApiServer, attacker: StubServer, localstripe_url: str, attack: str
) -> None:
    attacker.clear()
    base_url = attack.format(port=urlsplit(attacker.url).port, allowed=urlsplit(localstripe_url).port)
    result = ui_test(server, base_url)
    assert result["status"] is False, result
    assert attacker.requests == [], "the stored key was sent to a server the admin did not allow"
    message = result["message"]
    assert "allowed_base_urls in section stripe" in message or "backslash" in message, message
    assert message.startswith(f"Stripe connection {CONN_ID!r} is invalid, field 'base_url'"), message
    assert STORED_KEY not in message
