"""A stripe connection is validated against the contract before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_stripe.connection.config import config_from_connection, describe_key, validate_base_url
from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT, Mode
from airflow_provider_stripe.connection.form import MAX_TIMEOUT_S
from airflow_provider_stripe.errors import StripeConfigurationError
from tests.airflow_env import rate_limit_caps_env

KEY = "sk_test_51ValidKey000"
WHSEC = "whsec_abc123"


@dataclass
class FakeConn:
    extra_dejson: dict[str, Any] = field(default_factory=dict)
    password: str | None = None
    conn_id: str | None = "stripe_test"


def conf(**extra: Any):
    base = {"api_key": KEY, "webhook_secret": WHSEC}
    base.update(extra)
    return config_from_connection(FakeConn({k: v for k, v in base.items() if v is not None}))


def test_defaults_from_contract() -> None:
    cfg = conf()
    assert cfg.api_version == STRIPE_CONTRACT.version_policy.current_version
    assert cfg.base_url == STRIPE_CONTRACT.rest.base_url
    assert (cfg.rate_limit_per_minute, cfg.rate_limit_per_hour) == (1000, 20000)
    assert cfg.mode is Mode.BYOK and cfg.auth_type == "api_key"
    assert cfg.webhook_secrets == (WHSEC,)
    assert not cfg.livemode and not cfg.allow_live_mode


def test_password_is_the_fallback_key() -> None:
    cfg = config_from_connection(FakeConn({"webhook_secret": WHSEC}, password=KEY))
    assert cfg.api_key == KEY


def test_prefixed_extras_are_read() -> None:
    cfg = config_from_connection(
        FakeConn({"extra__stripe__api_key": KEY, "extra__stripe__webhook_secret": WHSEC, "account_id": "acct_1X"})
    )
    assert cfg.api_key == KEY and cfg.account_id == "acct_1X"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"api_key": None}, "api_key", "required by the payments.stripe contract"),
        ({"api_key": "pk_test_123"}, "api_key", "publishable"),
        ({"api_key": "sk_test_ab cd"}, "api_key", "malformed"),
        ({"api_key": "sk_prod_abc"}, "api_key", "malformed"),
        ({"webhook_secret": None}, "webhook_secret", "required by the payments.stripe contract"),
        ({"api_version": "2020-08-27"}, "api_version", "supported: 2024-11-20.acacia"),
        ({"base_url": "http://api.example.com"}, "base_url", "allowed_base_urls in section stripe"),
        ({"base_url": "ftp://127.0.0.1"}, "base_url", "has scheme 'ftp'"),
        ({"base_url": "https://api.example.com/v1"}, "base_url", "no path, query or fragment"),
        ({"account_id": "123"}, "account_id", "acct_"),
        ({"account_id": "../../x"}, "account_id", "not a Stripe account id"),
        ({"account_id": "acct_1A\r\nX-Injected: 1"}, "account_id", "not a Stripe account id"),
        ({"mode": "hosted"}, "mode", "allowed: managed, byok"),
        ({"mode": "managed"}, "auth_type", "oauth2"),
        ({"auth_type": "oauth2"}, "oauth_client_id", "airflow-stripe-oauth"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute", "minimum"),
        ({"rate_limit_per_hour": "many"}, "rate_limit_per_hour", "not a valid integer"),
        ({"allow_live_mode": "perhaps"}, "allow_live_mode", "not a valid boolean"),
        ({"region": 5}, "region", "is not of type 'string'"),
    ],
)
def test_invalid_connections_name_the_field(extra: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(StripeConfigurationError) as info:
        conf(**extra)
    assert info.value.field == field
    assert words in str(info.value)
    assert "stripe_test" in str(info.value)


@pytest.mark.parametrize("timeout", ["inf", "nan", "-inf", "1e308", 1e308, float("inf"), float("nan"), 601, "600.5"])
def test_timeout_is_finite_and_bounded(timeout: Any) -> None:
    """``inf``, ``nan`` and ``1e308`` used to pass and overflow every request (retried as network errors)."""
    with pytest.raises(StripeConfigurationError) as info:
        conf(timeout=timeout)
    assert info.value.field == "timeout"
    assert f"{MAX_TIMEOUT_S}" in str(info.value)
    assert conf(timeout=MAX_TIMEOUT_S).timeout == MAX_TIMEOUT_S


@pytest.mark.parametrize(
    ("field", "value"),
    [("rate_limit_per_minute", 1001), ("rate_limit_per_minute", 10**12), ("rate_limit_per_hour", 20_001)],
)
def test_rate_limits_are_capped_at_the_contract(field: str, value: int) -> None:
    """10**12 requests per minute used to be accepted: the contract's limit switched off by a connection."""
    with pytest.raises(StripeConfigurationError) as info:
        conf(**{field: value})
    assert info.value.field == field
    assert f"max_{field} in section stripe" in str(info.value) and f"AIRFLOW__STRIPE__MAX_{field.upper()}" in str(
        info.value
    )
    contract = STRIPE_CONTRACT.rate_limit
    cfg = conf(rate_limit_per_minute=contract.rpm, rate_limit_per_hour=contract.rph)
    assert (cfg.rate_limit_per_minute, cfg.rate_limit_per_hour) == (contract.rpm, contract.rph)


def test_the_admin_may_allow_higher_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in rate_limit_caps_env(5000, 100_000).items():
        monkeypatch.setenv(name, value)
    cfg = conf(rate_limit_per_minute=5000, rate_limit_per_hour=100_000)
    assert (cfg.rate_limit_per_minute, cfg.rate_limit_per_hour) == (5000, 100_000)
    with pytest.raises(StripeConfigurationError, match="above the maximum of 5000") as info:
        conf(rate_limit_per_minute=5001)
    assert info.value.field == "rate_limit_per_minute"
    # An admin value below the contract's never lowers the cap; a malformed one names the option.
    monkeypatch.setenv("AIRFLOW__STRIPE__MAX_RATE_LIMIT_PER_MINUTE", "10")
    assert conf().rate_limit_per_minute == STRIPE_CONTRACT.rate_limit.rpm
    monkeypatch.setenv("AIRFLOW__STRIPE__MAX_RATE_LIMIT_PER_MINUTE", "lots")
    with pytest.raises(StripeConfigurationError, match=r"max_rate_limit_per_minute in section stripe .* 'lots'"):
        conf()


def test_errors_never_echo_a_key() -> None:
    with pytest.raises(StripeConfigurationError) as info:
        conf(api_key="sk_test_abc$def")
    assert "abc$def" not in str(info.value)


def test_form_strings_are_coerced() -> None:
    cfg = conf(rate_limit_per_minute="10", allow_live_mode="true", timeout="2.5", max_network_retries="0")
    assert (cfg.rate_limit_per_minute, cfg.allow_live_mode, cfg.timeout, cfg.max_network_retries) == (10, True, 2.5, 0)


def test_rotation_secrets() -> None:
    assert conf(webhook_secret="whsec_new, whsec_old").webhook_secrets == ("whsec_new", "whsec_old")
    assert conf(webhook_secret=["whsec_a", "whsec_b"]).webhook_secrets == ("whsec_a", "whsec_b")


def test_oauth_managed_connection() -> None:
    cfg = conf(mode="managed", auth_type="oauth2", oauth_client_id="ca_123", account_id="acct_1Conn")
    assert cfg.mode is Mode.MANAGED and cfg.account_id == "acct_1Conn"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8420", "http://localhost:1", "https://api.stripe.com"])
def test_base_url_allowed(url: str) -> None:
    """Stripe, and the loopback servers the tests' admin allowlist names (tests/airflow_env.py)."""
    assert validate_base_url(url) == url


def test_describe_key_never_returns_the_key() -> None:
    assert describe_key("rk_live_abc") == "restricted live key"
    assert describe_key("sk_test_abc") == "secret test key"
    assert describe_key("pk_test_abc") == "publishable key"
    assert conf(api_key="rk_live_abc").livemode
