"""Stripe webhook signature verification: test vectors, and cross-checks against the installed SDK.

This module imports neither Airflow nor (at module level) the Stripe SDK. CI runs it with
stripe 14, 15 and 16 (the unit tier of ``scripts/test-matrix.sh``). The SDK cross-checks are what
show that the pure-Python verifier gives the same answers as Stripe's own code on each version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.errors import WebhookPayloadError, WebhookSignatureError, WebhookSignatureReason
from airflow_provider_stripe.events.secrets import parse_webhook_secrets
from airflow_provider_stripe.events.signature import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    construct_event,
    sign_payload,
    verify_signature,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

SECRET = "whsec_test_current_0123456789abcdef"
OLD_SECRET = "whsec_test_previous_fedcba9876543210"
UNRELATED_SECRET = "whsec_test_unrelated_00000000000000"
ALL_TEST_SECRETS = (SECRET, OLD_SECRET, UNRELATED_SECRET)

T = 1_700_000_000
EVENT: dict[str, Any] = {
    "id": "evt_1TestWebhook",
    "object": "event",
    "type": "payout.paid",
    "data": {"object": {"id": "po_1Test", "object": "payout", "amount": 1000, "description": "café ☕"}},
}
PAYLOAD = json.dumps(EVENT, ensure_ascii=False).encode("utf-8")  # raw body, non-ASCII on purpose


def hmac_v1(secret: str, timestamp: int, body: bytes) -> str:
    """The scheme written out independently of the module under test."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def refused(reason: WebhookSignatureReason, call: Callable[[], object], *never_shown: str) -> WebhookSignatureError:
    """Assert ``call`` raises for ``reason`` and that the message leaks no secret or expected signature."""
    with pytest.raises(WebhookSignatureError) as caught:
        call()
    error = caught.value
    assert error.reason is reason, str(error)
    message = str(error)
    assert message and message[0].isupper()
    for secret in ALL_TEST_SECRETS:
        assert secret not in message
    for value in never_shown:
        assert value not in message
    return error


# --- known answer and format ------------------------------------------------------------------


def test_known_answer_vector() -> None:
    # Computed independently: printf '1700000000.{"id":"evt_test","object":"event"}' \
    #   | openssl dgst -sha256 -hmac whsec_test_secret
    header = sign_payload(b'{"id":"evt_test","object":"event"}', "whsec_test_secret", timestamp=T)
    assert header == "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724"


def test_sign_payload_matches_scheme() -> None:
    assert sign_payload(PAYLOAD, SECRET, timestamp=T) == f"t={T},v1={hmac_v1(SECRET, T, PAYLOAD)}"


def test_sign_payload_defaults_to_now() -> None:
    before = int(time.time())
    header = sign_payload(PAYLOAD, SECRET)
    after = int(time.time())
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert before <= timestamp <= after
    verify_signature(PAYLOAD, header, [SECRET])


@pytest.mark.parametrize("secret", ["", "   ", "whsec_a,whsec_b", "whsec_a whsec_b"])
def test_sign_payload_needs_exactly_one_secret(secret: str) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        sign_payload(PAYLOAD, secret, timestamp=T)


@pytest.mark.parametrize("timestamp", [-1, True, 1.5, "1700000000"])
def test_sign_payload_rejects_bad_timestamps(timestamp: Any) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        sign_payload(PAYLOAD, SECRET, timestamp=timestamp)


def test_sign_payload_strips_the_secret_like_verification_does() -> None:
    header = sign_payload(PAYLOAD, f"  {SECRET}\n", timestamp=T)
    assert header == sign_payload(PAYLOAD, SECRET, timestamp=T)
    verify_signature(PAYLOAD, header, [f"{SECRET}\n"], now=T)


# --- accept / refuse vectors -------------------------------------------------------------------


def test_valid_signature() -> None:
    verify_signature(PAYLOAD, sign_payload(PAYLOAD, SECRET, timestamp=T), [SECRET], now=T)  # returns None


def test_wrong_secret() -> None:
    header = sign_payload(PAYLOAD, UNRELATED_SECRET, timestamp=T)
    error = refused(
        WebhookSignatureReason.NO_MATCH,
        lambda: verify_signature(PAYLOAD, header, [SECRET], now=T),
        hmac_v1(SECRET, T, PAYLOAD),
    )
    assert "signing secret" in str(error)


@pytest.mark.parametrize("index", [0, len(PAYLOAD) // 2, len(PAYLOAD) - 1])
def test_body_changed_by_one_byte(index: int) -> None:
    header = sign_payload(PAYLOAD, SECRET, timestamp=T)
    tampered = bytearray(PAYLOAD)
    tampered[index] ^= 0x01
    refused(
        WebhookSignatureReason.NO_MATCH,
        lambda: verify_signature(bytes(tampered), header, [SECRET], now=T),
        hmac_v1(SECRET, T, bytes(tampered)),
    )


def test_changed_timestamp_does_not_verify() -> None:
    signature = hmac_v1(SECRET, T, PAYLOAD)
    refused(
        WebhookSignatureReason.NO_MATCH,
        lambda: verify_signature(PAYLOAD, f"t={T + 1},v1={signature}", [SECRET], now=T),
    )


def test_expired_timestamp() -> None:
    header = sign_payload(PAYLOAD, SECRET, timestamp=T)
    verify_signature(PAYLOAD, header, [SECRET], now=T + DEFAULT_TOLERANCE_SECONDS)  # on the boundary: fresh
    error = refused(
        WebhookSignatureReason.TIMESTAMP_TOO_OLD,
        lambda: verify_signature(PAYLOAD, header, [SECRET], now=T + DEFAULT_TOLERANCE_SECONDS + 1),
    )
    assert "replay" in str(error) and "clock" in str(error)


def test_future_timestamp() -> None:
    header = sign_payload(PAYLOAD, SECRET, timestamp=T)
    verify_signature(PAYLOAD, header, [SECRET], now=T - DEFAULT_TOLERANCE_SECONDS)  # on the boundary: fresh
    error = refused(
        WebhookSignatureReason.TIMESTAMP_IN_FUTURE,
        lambda: verify_signature(PAYLOAD, header, [SECRET], now=T - DEFAULT_TOLERANCE_SECONDS - 1),
    )
    assert "clock" in str(error)


def test_custom_tolerance() -> None:
    header = sign_payload(PAYLOAD, SECRET, timestamp=T)
    verify_signature(PAYLOAD, header, [SECRET], tolerance=10, now=T + 10)
    refused(
        WebhookSignatureReason.TIMESTAMP_TOO_OLD,
        lambda: verify_signature(PAYLOAD, header, [SECRET], tolerance=10, now=T + 11),
    )
    refused(
        WebhookSignatureReason.TIMESTAMP_IN_FUTURE,
        lambda: verify_signature(PAYLOAD, header, [SECRET], tolerance=10, now=T - 11),
    )


def test_default_clock_is_used_when_now_is_omitted() -> None:
    verify_signature(PAYLOAD, sign_payload(PAYLOAD, SECRET), [SECRET])
    refused(
        WebhookSignatureReason.TIMESTAMP_TOO_OLD,
        lambda: verify_signature(PAYLOAD, sign_payload(PAYLOAD, SECRET, timestamp=T), [SECRET]),
    )


def test_timestamp_is_checked_only_for_authentic_signatures() -> None:
    header = sign_payload(PAYLOAD, UNRELATED_SECRET, timestamp=T)
    refused(WebhookSignatureReason.NO_MATCH, lambda: verify_signature(PAYLOAD, header, [SECRET], now=T + 10**6))


@pytest.mark.parametrize("tolerance", [0, -1])
def test_tolerance_must_be_positive(tolerance: int) -> None:
    header = sign_payload(PAYLOAD, SECRET, timestamp=T)
    with pytest.raises(ValueError, match="tolerance must be > 0") as caught:
        verify_signature(PAYLOAD, header, [SECRET], tolerance=tolerance, now=T)
    assert not isinstance(caught.value, WebhookSignatureError)


@pytest.mark.parametrize("tolerance", [True, 1.5, "300", None])
def test_tolerance_must_be_an_int(tolerance: Any) -> None:
    with pytest.raises(TypeError, match="tolerance"):
        verify_signature(PAYLOAD, sign_payload(PAYLOAD, SECRET, timestamp=T), [SECRET], tolerance=tolerance, now=T)


@pytest.mark.parametrize("header", [None, "", "   ", "\r\n"])
def test_missing_header(header: str | None) -> None:
    error = refused(WebhookSignatureReason.MISSING_HEADER, lambda: verify_signature(PAYLOAD, header, [SECRET], now=T))
    assert SIGNATURE_HEADER in str(error)


def test_header_must_be_a_string() -> None:
    header = sign_payload(PAYLOAD, SECRET, timestamp=T).encode()
    with pytest.raises(TypeError, match="decode"):
        verify_signature(PAYLOAD, header, [SECRET], now=T)  # type: ignore[arg-type]


GOOD_V1 = hmac_v1(SECRET, T, PAYLOAD)
GOOD_V1_HEADER = f"t={T},v1={GOOD_V1}"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        pytest.param("garbage", "not of the form key=value", id="garbage"),
        pytest.param(",", "not of the form key=value", id="only-comma"),
        pytest.param(f"t={T},,v1={GOOD_V1}", "element 2", id="empty-element"),
        pytest.param(f"t={T},v1={GOOD_V1},", "element 3", id="trailing-comma"),
        pytest.param(f"t=,v1={GOOD_V1}", "element 1", id="empty-t"),
        pytest.param(f"t={T},v1=", "element 2", id="empty-v1"),
        pytest.param(f"t={T},v1", "element 2", id="v1-without-value"),
        pytest.param(f"={T},v1={GOOD_V1}", "element 1", id="empty-key"),
        pytest.param(f"t={T}, v1={GOOD_V1}", "element 2", id="space-inside"),
        pytest.param(f"t = {T},v1={GOOD_V1}", "element 1", id="spaces-around-equals"),
        pytest.param(f"t={T};v1={GOOD_V1}", "not an integer", id="semicolon-separated"),
        pytest.param(f"v1={GOOD_V1}", "no 't'", id="no-t"),
        pytest.param(f"T={T},v1={GOOD_V1}", "no 't'", id="uppercase-t"),
        pytest.param(f"t=abc,v1={GOOD_V1}", "not an integer", id="non-integer-t"),
        pytest.param(f"t={T}.5,v1={GOOD_V1}", "not an integer", id="fractional-t"),
        pytest.param(f"t=-{T},v1={GOOD_V1}", "not an integer", id="negative-t"),
        pytest.param(f"t=+{T},v1={GOOD_V1}", "not an integer", id="plus-t"),
        pytest.param(f"t=1_700_000_000,v1={GOOD_V1}", "not an integer", id="underscore-t"),
        pytest.param(f"t=\u0661\u0667\u0660\u0660,v1={GOOD_V1}", "not an integer", id="non-ascii-digits-t"),
        pytest.param(f"t={T},t={T},v1={GOOD_V1}", "appears 2 times", id="duplicated-t"),
        pytest.param(f"t={T},v1={GOOD_V1},t={T + 1}", "appears 2 times", id="duplicated-t-differing"),
    ],
)
def test_malformed_header(header: str, detail: str) -> None:
    error = refused(
        WebhookSignatureReason.MALFORMED_HEADER,
        lambda: verify_signature(PAYLOAD, header, [SECRET], now=T),
    )
    assert detail in str(error)
    assert "t=<unix seconds>,v1=<hex signature>" in str(error)


def test_surrounding_whitespace_of_the_whole_header_is_ignored() -> None:
    header = sign_payload(PAYLOAD, SECRET, timestamp=T)
    verify_signature(PAYLOAD, f" {header}\r\n", [SECRET], now=T)


@pytest.mark.parametrize("header", [f"t={T}", f"t={T},v0={GOOD_V1}", f"t={T},v0=abc,v2=def"])
def test_missing_v1_signature(header: str) -> None:
    error = refused(WebhookSignatureReason.NO_V1_SIGNATURE, lambda: verify_signature(PAYLOAD, header, [SECRET], now=T))
    if "v0" in header:
        assert "it only has: v0" in str(error)


def test_other_schemes_are_ignored() -> None:
    # A v0 that would "match" does not count; a v1 next to unknown schemes is still used.
    header = f"t={T},v0={GOOD_V1},v1=00"
    refused(WebhookSignatureReason.NO_MATCH, lambda: verify_signature(PAYLOAD, header, [SECRET], now=T))
    verify_signature(PAYLOAD, f"t={T},v0=deadbeef,v1={GOOD_V1},v2=cafe", [SECRET], now=T)


@pytest.mark.parametrize("order", ["matching-first", "matching-last"])
def test_two_v1_signatures_one_matches(order: str) -> None:
    stale = hmac_v1(OLD_SECRET, T, PAYLOAD)
    first, second = (GOOD_V1, stale) if order == "matching-first" else (stale, GOOD_V1)
    header = f"t={T},v1={first},v1={second}"
    verify_signature(PAYLOAD, header, [SECRET], now=T)
    refused(WebhookSignatureReason.NO_MATCH, lambda: verify_signature(PAYLOAD, header, [UNRELATED_SECRET], now=T))


@pytest.mark.parametrize("signature", ["é" * 64, GOOD_V1.upper(), GOOD_V1[:-1], GOOD_V1 + "0", "0" * 64])
def test_near_miss_and_non_ascii_signatures_do_not_match(signature: str) -> None:
    refused(
        WebhookSignatureReason.NO_MATCH,
        lambda: verify_signature(PAYLOAD, f"t={T},v1={signature}", [SECRET], now=T),
        GOOD_V1,
    )


# --- secret rotation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "configured",
    [
        [SECRET, OLD_SECRET],
        (OLD_SECRET, SECRET),
        f"{SECRET},{OLD_SECRET}",
        f"{OLD_SECRET}\n{SECRET}\n",
        json.dumps([SECRET, OLD_SECRET]),
    ],
    ids=["list", "tuple-old-first", "comma-string", "newline-string", "json-list-string"],
)
def test_rotation_accepts_old_and_new_and_refuses_a_third(configured: Any) -> None:
    for signer in (SECRET, OLD_SECRET):
        verify_signature(PAYLOAD, sign_payload(PAYLOAD, signer, timestamp=T), configured, now=T)
    error = refused(
        WebhookSignatureReason.NO_MATCH,
        lambda: verify_signature(PAYLOAD, sign_payload(PAYLOAD, UNRELATED_SECRET, timestamp=T), configured, now=T),
        GOOD_V1,
        hmac_v1(OLD_SECRET, T, PAYLOAD),
    )
    assert "2 configured secret(s)" in str(error)


def test_a_single_secret_string_is_not_iterated_character_by_character() -> None:
    # Iterating "whsec_..." would try "w", "h", ... as secrets: a forgery with key "w" must fail.
    forged = sign_payload(PAYLOAD, "w", timestamp=T)
    refused(WebhookSignatureReason.NO_MATCH, lambda: verify_signature(PAYLOAD, forged, SECRET, now=T))
    verify_signature(PAYLOAD, sign_payload(PAYLOAD, SECRET, timestamp=T), SECRET, now=T)


@pytest.mark.parametrize("secrets", [[], (), [""], ["  ", "\n"], "", " , \n"])
def test_empty_secret_list(secrets: Any) -> None:
    error = refused(
        WebhookSignatureReason.NO_SECRET,
        lambda: verify_signature(PAYLOAD, sign_payload(PAYLOAD, SECRET, timestamp=T), secrets, now=T),
    )
    assert "whsec_" in str(error)


def test_no_secret_is_reported_before_request_problems() -> None:
    refused(WebhookSignatureReason.NO_SECRET, lambda: verify_signature(PAYLOAD, None, [], now=T))
    refused(WebhookSignatureReason.NO_SECRET, lambda: verify_signature(PAYLOAD, "garbage", [], now=T))


# --- payload types -----------------------------------------------------------------------------


def test_str_and_bytes_payloads_are_equivalent() -> None:
    text = PAYLOAD.decode("utf-8")
    assert not text.isascii()
    assert sign_payload(text, SECRET, timestamp=T) == sign_payload(PAYLOAD, SECRET, timestamp=T)
    verify_signature(text, sign_payload(PAYLOAD, SECRET, timestamp=T), [SECRET], now=T)
    verify_signature(PAYLOAD, sign_payload(text, SECRET, timestamp=T), [SECRET], now=T)
    verify_signature(bytearray(PAYLOAD), GOOD_V1_HEADER, [SECRET], now=T)  # type: ignore[arg-type]
    verify_signature(memoryview(PAYLOAD), GOOD_V1_HEADER, [SECRET], now=T)  # type: ignore[arg-type]


def test_a_parsed_payload_is_refused_with_advice() -> None:
    with pytest.raises(TypeError, match="raw request body"):
        verify_signature(EVENT, GOOD_V1_HEADER, [SECRET], now=T)  # type: ignore[arg-type]


def test_unencodable_str_payload_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="as bytes"):
        verify_signature("\udcff", GOOD_V1_HEADER, [SECRET], now=T)


# --- construct_event ---------------------------------------------------------------------------


def test_construct_event_returns_the_dict() -> None:
    event = construct_event(PAYLOAD, sign_payload(PAYLOAD, SECRET, timestamp=T), [SECRET], now=T)
    assert type(event) is dict
    assert event == EVENT
    assert event["data"]["object"]["description"] == "café ☕"
    text = PAYLOAD.decode()
    assert construct_event(text, sign_payload(text, OLD_SECRET, timestamp=T), [SECRET, OLD_SECRET], now=T) == EVENT


def test_construct_event_verifies_before_parsing() -> None:
    body = b"not json"
    refused(
        WebhookSignatureReason.NO_MATCH,
        lambda: construct_event(body, sign_payload(body, UNRELATED_SECRET, timestamp=T), [SECRET], now=T),
    )
    refused(
        WebhookSignatureReason.TIMESTAMP_TOO_OLD,
        lambda: construct_event(PAYLOAD, sign_payload(PAYLOAD, SECRET, timestamp=T), [SECRET], now=T + 10**4),
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b'{"id": "evt_1"', "not JSON"),
        (b"[1, 2]", "an array in JSON, not an object"),
        (b'"evt_1"', "a string in JSON, not an object"),
        (b"null", "null in JSON, not an object"),
        (b"true", "a boolean in JSON, not an object"),
        (b"1.5", "a number in JSON, not an object"),
        (b'{"id": "\xff"}', "not UTF-8"),
    ],
)
def test_construct_event_refuses_verified_bodies_that_are_not_json_objects(body: bytes, match: str) -> None:
    with pytest.raises(WebhookPayloadError, match=match) as caught:
        construct_event(body, sign_payload(body, SECRET, timestamp=T), [SECRET], now=T)
    assert "signature is valid" in str(caught.value)
    assert not isinstance(caught.value, WebhookSignatureError)
    assert isinstance(caught.value, ValueError)


# --- parse_webhook_secrets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("  \n ", ()),
        ([], ()),
        ("whsec_a", ("whsec_a",)),
        ("  whsec_a\n", ("whsec_a",)),
        ("whsec_a,whsec_b", ("whsec_a", "whsec_b")),
        ("whsec_a, whsec_b", ("whsec_a", "whsec_b")),
        ("whsec_a whsec_b\twhsec_c", ("whsec_a", "whsec_b", "whsec_c")),
        ("whsec_a\nwhsec_b\r\n", ("whsec_a", "whsec_b")),
        (",whsec_a,,\n,whsec_b,", ("whsec_a", "whsec_b")),
        ("whsec_b,whsec_a,whsec_b", ("whsec_b", "whsec_a")),
        (["whsec_a", " whsec_b ", "", "whsec_a"], ("whsec_a", "whsec_b")),
        (("whsec_a,whsec_b", "whsec_c"), ("whsec_a", "whsec_b", "whsec_c")),
        ('["whsec_a", "whsec_b"]', ("whsec_a", "whsec_b")),
        (' ["whsec_b", "whsec_a", "whsec_b"] ', ("whsec_b", "whsec_a")),
    ],
)
def test_parse_webhook_secrets(value: Any, expected: tuple[str, ...]) -> None:
    assert parse_webhook_secrets(value) == expected


@pytest.mark.parametrize("value", [b"whsec_a", 42, {"whsec_a"}, ["whsec_a", 42], [None]])
def test_parse_webhook_secrets_rejects_non_strings(value: Any) -> None:
    with pytest.raises(TypeError):
        parse_webhook_secrets(value)


@pytest.mark.parametrize("value", ['["whsec_a", ', "[whsec_a]", '[1, "whsec_a"'])
def test_parse_webhook_secrets_rejects_broken_json_lists_without_echoing_them(value: str) -> None:
    with pytest.raises(ValueError, match="JSON list") as caught:
        parse_webhook_secrets(value)
    assert "whsec_a" not in str(caught.value)


# --- the error type, the contract, import weight ----------------------------------------------


def test_reasons_are_the_documented_strings() -> None:
    assert {reason.value for reason in WebhookSignatureReason} == {
        "missing_header",
        "malformed_header",
        "no_v1_signature",
        "no_secret",
        "no_match",
        "timestamp_too_old",
        "timestamp_in_future",
    }
    assert WebhookSignatureReason.NO_MATCH == "no_match"
    assert str(WebhookSignatureReason.NO_MATCH) == "no_match"


def test_error_is_a_value_error_and_pickles() -> None:
    error = refused(WebhookSignatureReason.NO_MATCH, lambda: verify_signature(PAYLOAD, "t=1,v1=00", [SECRET], now=1))
    assert isinstance(error, ValueError)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is WebhookSignatureError
    assert clone.reason is WebhookSignatureReason.NO_MATCH
    assert str(clone) == str(error)


def test_header_name_and_algorithm_are_stripes() -> None:
    # Stripe's documented values (the spec's signatureHeader and signingAlgorithm), written out
    # here: comparing the contract with itself could not fail.
    assert SIGNATURE_HEADER.lower() == "stripe-signature"
    assert STRIPE_CONTRACT.webhook_signing_auth.signature_header.lower() == "stripe-signature"
    now = int(time.time())
    signed = f"{now}.".encode() + PAYLOAD
    sha256 = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    sha1 = hmac.new(SECRET.encode(), signed, hashlib.sha1).hexdigest()
    verify_signature(PAYLOAD, f"t={now},v1={sha256}", [SECRET], now=now)
    refused(WebhookSignatureReason.NO_MATCH, lambda: verify_signature(PAYLOAD, f"t={now},v1={sha1}", [SECRET], now=now))


@pytest.mark.slow
def test_importing_the_module_loads_no_stripe_sdk() -> None:
    # Airflow is loaded: the provider's one error hierarchy (errors.py) makes deterministic
    # errors AirflowFailExceptions so that Airflow does not retry them.
    code = (
        "import sys, airflow_provider_stripe.events.signature\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'stripe', 'requests', 'fastapi'})\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == ""


# --- cross-checks against the installed Stripe SDK ---------------------------------------------


@pytest.fixture(scope="module")
def stripe() -> ModuleType:
    return pytest.importorskip("stripe")


def test_sdk_accepts_signatures_from_sign_payload(stripe: ModuleType) -> None:
    header = sign_payload(PAYLOAD, SECRET)  # now: the SDK checks the age against its own clock
    # str body: stripe 14's verify_header does not decode bytes (it signs their repr).
    assert stripe.WebhookSignature.verify_header(PAYLOAD.decode(), header, SECRET, DEFAULT_TOLERANCE_SECONDS) is True
    event = stripe.Webhook.construct_event(PAYLOAD, header, SECRET, DEFAULT_TOLERANCE_SECONDS, api_key="sk_test_x")
    assert event["id"] == EVENT["id"]
    assert event["data"]["object"]["description"] == "café ☕"


def test_signatures_from_the_sdk_scheme_verify_with_ours(stripe: ModuleType) -> None:
    signature_cls = stripe.WebhookSignature
    if not hasattr(signature_cls, "_compute_signature"):
        pytest.skip(
            f"stripe {stripe.VERSION} has no WebhookSignature._compute_signature (a private helper), so the SDK's "
            "scheme cannot be invoked directly; the other SDK cross-checks still ran."
        )
    text = PAYLOAD.decode()
    sdk_header = f"t={T},v1={signature_cls._compute_signature(f'{T}.{text}', SECRET)}"
    assert sdk_header == sign_payload(PAYLOAD, SECRET, timestamp=T)
    verify_signature(PAYLOAD, sdk_header, [SECRET], now=T)
    assert construct_event(PAYLOAD, sdk_header, [OLD_SECRET, SECRET], now=T) == EVENT
    generate = getattr(signature_cls, "generate_signature_header", None)  # public since stripe 15/16
    if generate is not None:
        generated = generate(text, SECRET, timestamp=T)
        assert generated == sdk_header
        verify_signature(PAYLOAD, generated, [SECRET], now=T)


def _sdk_vectors(now: int) -> list[tuple[str, bytes, str, str]]:
    """(name, body, header, secret) cases within what the SDK checks: body, secret, v1 matching, age."""
    stale = hmac_v1(OLD_SECRET, now, PAYLOAD)
    fresh = hmac_v1(SECRET, now, PAYLOAD)
    tampered = PAYLOAD.replace(b"1000", b"1001")
    old = now - DEFAULT_TOLERANCE_SECONDS - 60
    return [
        ("valid", PAYLOAD, f"t={now},v1={fresh}", SECRET),
        ("wrong-secret", PAYLOAD, f"t={now},v1={fresh}", UNRELATED_SECRET),
        ("one-byte-changed", tampered, f"t={now},v1={fresh}", SECRET),
        ("timestamp-changed", PAYLOAD, f"t={now - 1},v1={fresh}", SECRET),
        ("expired", PAYLOAD, f"t={old},v1={hmac_v1(SECRET, old, PAYLOAD)}", SECRET),
        ("slightly-old", PAYLOAD, f"t={now - 60},v1={hmac_v1(SECRET, now - 60, PAYLOAD)}", SECRET),
        ("two-v1-one-matching", PAYLOAD, f"t={now},v1={stale},v1={fresh}", SECRET),
        ("two-v1-none-matching", PAYLOAD, f"t={now},v1={stale},v1={stale}", SECRET),
        ("v0-and-v1", PAYLOAD, f"t={now},v0={stale},v1={fresh}", SECRET),
        ("only-v0", PAYLOAD, f"t={now},v0={fresh}", SECRET),
        ("no-t", PAYLOAD, f"v1={fresh}", SECRET),
        ("non-integer-t", PAYLOAD, f"t=soon,v1={fresh}", SECRET),
        ("missing-header", PAYLOAD, "", SECRET),
    ]


def test_same_answers_as_the_sdk(stripe: ModuleType) -> None:
    """Both verifiers accept and refuse the same requests (future timestamps aside: the SDK allows them)."""
    now = int(time.time())
    disagreements = []
    for name, body, header, secret in _sdk_vectors(now):
        try:
            stripe.WebhookSignature.verify_header(body.decode(), header, secret, DEFAULT_TOLERANCE_SECONDS)
            sdk_accepts = True
        except stripe.SignatureVerificationError:
            sdk_accepts = False
        try:
            verify_signature(body, header, [secret], now=now)
            ours_accepts = True
        except WebhookSignatureError:
            ours_accepts = False
        if sdk_accepts != ours_accepts:
            disagreements.append(f"{name}: sdk={sdk_accepts} ours={ours_accepts}")
    assert not disagreements, f"stripe {stripe.VERSION}: {disagreements}"
