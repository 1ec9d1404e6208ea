"""Stripe Connect OAuth helpers and the one-off CLI, against the recording stub."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_stripe.connection import oauth, oauth_cli
from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.hooks.stripe import StripeHook
from tests.servers.stub_stripe import RecordedRequest, StubResponse, StubServer

PLATFORM_KEY = "sk_test_51PlatformKey"
TOKEN = {
    "access_token": "sk_test_51ConnectedAccessToken",
    "refresh_token": "rt_RefreshToken0001",
    "stripe_user_id": "acct_1Connected",
    "scope": "read_write",
    "livemode": False,
    "token_type": "bearer",
}


def _responder(req: RecordedRequest) -> StubResponse | None:
    if req.path == "/oauth/token":
        return StubResponse(200, TOKEN)
    if req.path == "/oauth/deauthorize":
        return StubResponse(200, {"stripe_user_id": req.form["stripe_user_id"]})
    return None


@pytest.fixture
def platform_conn(monkeypatch: pytest.MonkeyPatch, stub_stripe: StubServer) -> str:
    stub_stripe.responder = _responder
    extra = {"api_key": PLATFORM_KEY, "webhook_secret": "whsec_p", "base_url": stub_stripe.url}
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_PLATFORM", json.dumps({"conn_type": "stripe", "extra": extra}))
    return "stripe_platform"


def test_authorize_url_uses_the_contract() -> None:
    url, state = oauth.authorize_url("ca_123", "https://airflow.example.com/cb")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == STRIPE_CONTRACT.oauth2_auth.authorization_url
    query = parse_qs(parts.query)
    assert query["scope"] == ["read_write"] and query["response_type"] == ["code"]
    assert query["client_id"] == ["ca_123"] and query["state"] == [state] and len(state) > 20


def test_exchange_refresh_deauthorize(platform_conn: str, stub_stripe: StubServer) -> None:
    hook = StripeHook(platform_conn)
    grant = oauth.exchange_code(hook, "ac_code123")
    assert grant.stripe_user_id == "acct_1Connected" and grant.refresh_token == "rt_RefreshToken0001"
    assert "rt_" not in repr(grant) and "sk_" not in repr(grant)
    token_req = stub_stripe.requests_to("/oauth/token")[0]
    assert token_req.form == {"grant_type": "authorization_code", "code": "ac_code123"}
    assert token_req.headers["Authorization"] == f"Bearer {PLATFORM_KEY}"
    assert "Stripe-Account" not in token_req.headers

    oauth.refresh(hook, "rt_RefreshToken0001")
    assert stub_stripe.requests_to("/oauth/token")[1].form["grant_type"] == "refresh_token"


def test_connected_account_connection_acts_on_the_account(
    monkeypatch: pytest.MonkeyPatch, platform_conn: str, stub_stripe: StubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert oauth_cli.main(["exchange", "--platform-conn", platform_conn, "--client-id", "ca_1", "--code", "ac_x"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["extra"]["account_id"] == "acct_1Connected" and printed["extra"]["mode"] == "managed"
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_CONNECTED", json.dumps(printed))
    hook = StripeHook("stripe_connected")
    hook.get_client().v1.balance.retrieve()
    last = stub_stripe.requests[-1]
    assert last.headers["Stripe-Account"] == "acct_1Connected"
    assert last.headers["Authorization"] == f"Bearer {PLATFORM_KEY}"
    assert oauth.deauthorize(hook) == "acct_1Connected"
    assert stub_stripe.requests_to("/oauth/deauthorize")[0].form["client_id"] == "ca_1"
