"""A key goes only to Stripe or to a base URL the Airflow admin listed in ``[stripe] allowed_base_urls``.

Issue 8: the Test button with the masked extra and an attacker's ``base_url`` sent the stored key
anywhere; ``http://attacker.example\\@127.0.0.1:443`` passed the loopback check while urllib3
connected to attacker.example. These tests fail on the code before the allowlist.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from airflow_provider_stripe.connection.config import (
    ALLOWED_BASE_URLS_ENV,
    ALLOWED_BASE_URLS_KEY,
    ALLOWED_BASE_URLS_SECTION,
    config_from_connection,
    parse_base_url,
    validate_base_url,
)
from airflow_provider_stripe.errors import StripeConfigurationError
from airflow_provider_stripe.get_provider_info import get_provider_info
from tests.unit.test_config import FakeConn

KEY = "sk_test_51ValidKey000"


def refused(base_url: str) -> str:
    with pytest.raises(StripeConfigurationError) as info:
        validate_base_url(base_url, conn_id="stripe_x")
    assert info.value.field == "base_url"
    return str(info.value)


def test_only_stripe_without_an_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOWED_BASE_URLS_ENV, raising=False)
    assert validate_base_url("https://api.stripe.com") == "https://api.stripe.com"
    for url in ("http://127.0.0.1:12111", "http://localhost:8420", "http://[::1]:80", "https://evil.example"):
        message = refused(url)
        assert "allowed_base_urls in section stripe" in message and ALLOWED_BASE_URLS_ENV in message


def test_entries_with_and_without_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, " http://127.0.0.1 , https://mock.internal:12111/ ,")
    assert validate_base_url("http://127.0.0.1:5") == "http://127.0.0.1:5"  # no port in the entry: any port
    assert validate_base_url("http://127.0.0.1") == "http://127.0.0.1"
    assert validate_base_url("https://MOCK.internal:12111/") == "https://mock.internal:12111"
    refused("https://mock.internal:12112")  # the entry names a port: only that one
    refused("https://mock.internal")
    refused("https://127.0.0.1:5")  # another scheme
    refused("http://127.0.0.2:5")  # another host


def test_the_option_is_read_when_used_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, "http://127.0.0.1")
    validate_base_url("http://127.0.0.1:9")
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, "")
    refused("http://127.0.0.1:9")


def test_a_malformed_entry_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, "http://127.0.0.1,ftp://x")
    message = refused("http://127.0.0.1:9")
    assert "entry 2" in message and "allowed_base_urls in section stripe" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://attacker.example\\@127.0.0.1:443",  # urllib3 connects to attacker.example
        "http://attacker.example\\.127.0.0.1",
        "http://user:hunter2-canary@127.0.0.1:8420",
        "http://127.0.0.1:8420@attacker.example",
        "http://127.0.0.1 :8420",
        "http://127.0.0.1:8420\n",
        "http://127.0.0.1\t",
        "http://127.0.0.1\x00.attacker.example",
        "http://127.0.0.1%2f@attacker.example",
        "http://127.0.0.1:8420/v1",
        "http://127.0.0.1:8420?x=1",
        "http://127.0.0.1:8420#x",
        "http://127.0.0.1:99999",
        "http://\uff45xample.com",  # fullwidth e
        "//127.0.0.1:8420",
        "127.0.0.1:8420",
    ],
)
def test_ambiguous_urls_are_refused_before_any_lookup(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Refused whatever the allowlist says, without a DNS look-up or a connection."""
    monkeypatch.setenv(ALLOWED_BASE_URLS_ENV, "http://127.0.0.1,http://attacker.example")

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refused base_url must not reach the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    message = refused(url)
    assert "hunter2-canary" not in message and "attacker.example" not in message


def test_the_checked_url_is_the_url_used() -> None:
    """What the hook sends to is rebuilt from the parsed parts, never the raw text."""
    parsed = parse_base_url("HTTP://LocalHost:8420/")
    assert str(parsed) == "http://localhost:8420"


def test_a_connection_with_a_refused_base_url_fails_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOWED_BASE_URLS_ENV, raising=False)
    conn = FakeConn({"api_key": KEY, "webhook_secret": "whsec_1", "base_url": "https://collector.example"})
    with pytest.raises(StripeConfigurationError, match=r"allowed_base_urls"):
        config_from_connection(conn)


def test_option_registered_in_provider_info() -> None:
    section = get_provider_info()["config"][ALLOWED_BASE_URLS_SECTION]
    option = section["options"][ALLOWED_BASE_URLS_KEY]
    assert option["default"] == "" and option["type"] == "string"
    assert "https://api.stripe.com" in option["description"] and "any port" in option["description"]
