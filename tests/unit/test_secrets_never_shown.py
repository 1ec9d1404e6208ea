"""Secrets are never shown: Redis passwords, URL userinfo, Airflow's transient Test conn id (issue 8).

Each test fails on the code before the fix: the storage URI was printed whole by
``repr(config)``, ``repr(RateLimitSpec)`` and limits' "unknown storage scheme" error, the
password was not given to the masker, and the Test button named ``'GbFOinpQ'``.
"""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airflow_provider_stripe.connection.config import ALLOWED_BASE_URLS_ENV, config_from_connection
from airflow_provider_stripe.hooks.ratelimit import RateLimitSpec, StripeRateLimiter, hide_userinfo, userinfo_secrets
from airflow_provider_stripe.plugins.connection_test_fix import TESTED_CONNECTION_ID, StripeConnectionTestPortFix
from tests.unit.test_config import FakeConn

KEY = "sk_test_51ValidKey000"
REDIS_PASSWORD = "redis-pw-canary-7Qx"
REDIS_URI = f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
TRANSIENT_ID = "GbFOinpQ"


def test_storage_password_hidden_from_reprs() -> None:
    cfg = config_from_connection(
        FakeConn({"api_key": KEY, "webhook_secret": "whsec_1", "rate_limit_storage_uri": REDIS_URI})
    )
    assert cfg.rate_limit_storage_uri == REDIS_URI  # the limiter still gets the real URI
    assert REDIS_PASSWORD not in repr(cfg) and "redis://***@127.0.0.1:6379/0" in repr(cfg)
    assert KEY not in repr(cfg)
    spec = RateLimitSpec(1, 1, REDIS_URI)
    assert REDIS_PASSWORD not in repr(spec) and "***@127.0.0.1" in repr(spec)
    assert REDIS_PASSWORD in cfg.secrets()  # registered with the masker by the hook


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("redis://user:p%40ss@h:1/0", "redis://***@h:1/0"),
        ("redis://:a@b/c@h:1", "redis://***@h:1"),
        ("memory://", "memory://"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_hide_userinfo(uri: str, shown: str) -> None:
    assert hide_userinfo(uri) == shown


def test_userinfo_secrets_include_the_decoded_password() -> None:
    assert {"p%40ss", "p@ss"} <= set(userinfo_secrets("redis://user:p%40ss@h:1/0"))


def test_unknown_storage_scheme_error_hides_the_password() -> None:
    from limits.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        StripeRateLimiter("stripe:x", RateLimitSpec(1, 1, f"rediss+nope://:{REDIS_PASSWORD}@127.0.0.1:6379"))
    assert REDIS_PASSWORD not in str(info.value) and "unknown storage scheme" in str(info.value)


def test_hook_masks_the_storage_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_stripe.hooks import stripe as hook_module

    masked: list[str] = []
    monkeypatch.setattr(hook_module, "_mask", masked.append)
    extra = {"api_key": KEY, "webhook_secret": "whsec_1", "rate_limit_storage_uri": REDIS_URI}
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_REDIS_MASK", json.dumps({"conn_type": "stripe", "extra": extra}))
    assert hook_module.StripeHook("stripe_redis_mask").config
    assert REDIS_PASSWORD in masked and KEY in masked


def _transient_connection(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """What Airflow's Test route does: the tested connection under a random transient id, as an env var."""
    doc = {"conn_type": "stripe", "extra": {"api_key": KEY, "webhook_secret": "whsec_1", **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{TRANSIENT_ID.upper()}", json.dumps(doc))


def test_test_button_names_the_users_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_stripe.hooks.stripe import StripeHook

    monkeypatch.delenv(ALLOWED_BASE_URLS_ENV, raising=False)
    _transient_connection(monkeypatch, base_url="https://user:url-pw-canary@collector.example")
    token = TESTED_CONNECTION_ID.set("stripe_prod")
    try:
        ok, message = StripeHook(TRANSIENT_ID).test_connection()
    finally:
        TESTED_CONNECTION_ID.reset(token)
    assert not ok
    assert message.startswith("Stripe connection 'stripe_prod' is invalid") and "field 'base_url'" in message
    assert TRANSIENT_ID not in message and "url-pw-canary" not in message and "user:" not in message


def test_without_the_request_it_says_this_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_stripe.hooks.stripe import StripeHook

    _transient_connection(monkeypatch, account_id="acct_1\n")
    ok, message = StripeHook(TRANSIENT_ID).test_connection()
    assert not ok and message.startswith("This Stripe connection is invalid, field 'account_id'")
    assert TRANSIENT_ID not in message


def test_middleware_exposes_the_tested_connection_id_to_the_route() -> None:
    app = FastAPI()
    seen: list[str | None] = []

    @app.post("/api/v2/connections/test")
    def route() -> dict[str, str]:  # sync, like Airflow's: runs in a worker thread
        seen.append(TESTED_CONNECTION_ID.get())
        return {}

    app.add_middleware(StripeConnectionTestPortFix)
    client = TestClient(app)
    client.post("/api/v2/connections/test", json={"connection_id": "stripe_prod", "conn_type": "stripe", "port": 0})
    client.post("/api/v2/connections/test", json={"connection_id": "pg", "conn_type": "postgres"})
    assert seen == ["stripe_prod", None]
    assert TESTED_CONNECTION_ID.get() is None
