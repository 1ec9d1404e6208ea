"""Verify inbound Stripe webhooks in pure Python (``hmac`` + ``hashlib``), without the Stripe SDK.

``stripe.Webhook`` differs between supported SDK versions, takes one secret (no rotation) and
accepts future timestamps. Scheme: ``t=<unix>,v1=<hex>...`` with
``v1 = hex(HMAC-SHA256(whsec_..., b"<t>." + body))``; any ``v1`` under any secret, ``t`` within
``tolerance`` either way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_stripe.connection.contract import STRIPE_CONTRACT
from airflow_provider_stripe.errors import WebhookPayloadError, WebhookSignatureError, WebhookSignatureReason
from airflow_provider_stripe.events.secrets import parse_webhook_secrets

SIGNATURE_HEADER: str = STRIPE_CONTRACT.webhook.signature_header

DEFAULT_TOLERANCE_SECONDS = 300
"""How far (seconds) a signature's timestamp may be from now; Stripe's own default."""

_SCHEME = "v1"
"""The only signature scheme Stripe uses for live signatures; others (``v0``) are ignored."""

_ELEMENT = re.compile(r"([A-Za-z0-9_]+)=([^\s,]+)")

_UNSIGNED_INT = re.compile(r"[0-9]+")
"""ASCII digits only: ``int()`` alone would also accept ``+1``, `` 1``, ``1_0`` and non-ASCII digits."""

_DIGEST: Callable[[], Any] = {"hmac-sha256": hashlib.sha256}[STRIPE_CONTRACT.webhook.signing_algorithm]


def _body_bytes(payload: bytes | str) -> bytes:
    """The exact bytes that were signed: the raw request body (a ``str`` is taken as UTF-8)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        try:
            return payload.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "The webhook payload string cannot be encoded as UTF-8; pass the raw request body as bytes."
            ) from None
    raise TypeError(
        f"The webhook payload must be the raw request body as bytes (or str), not {type(payload).__name__}. "
        "Verify the body exactly as received, before parsing it as JSON."
    )


def _check_tolerance(tolerance: int) -> None:
    """Refuse a tolerance that would switch the replay protection off (must be a positive int)."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int):
        raise TypeError(f"tolerance must be an int number of seconds, not {type(tolerance).__name__}.")
    if tolerance <= 0:
        raise ValueError(
            f"tolerance must be > 0 seconds (got {tolerance}); it bounds how old or how far in the "
            f"future a signed timestamp may be, which is what stops replayed requests. "
            f"Stripe's default is {DEFAULT_TOLERANCE_SECONDS}."
        )


def _signature(secret: str, timestamp: int, body: bytes) -> str:
    """hex(HMAC(secret, b"<timestamp>." + body)): the ``v1`` value Stripe sends."""
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, _DIGEST).hexdigest()


def _malformed(detail: str) -> WebhookSignatureError:
    return WebhookSignatureError(
        WebhookSignatureReason.MALFORMED_HEADER,
        f"The {SIGNATURE_HEADER!r} header is malformed: {detail}. Expected "
        f"'t=<unix seconds>,{_SCHEME}=<hex signature>[,{_SCHEME}=...]'. Pass the header "
        "value exactly as received, and check that nothing between Stripe and this endpoint rewrites it.",
    )


def check_header(sig_header: str | None, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> None:
    """Check a signature header's shape and timestamp without any secret, so junk costs no look-up."""
    _check_tolerance(tolerance)
    timestamp, _ = _v1_signatures(sig_header)
    _check_fresh(timestamp, tolerance, time.time() if now is None else now)


def verify_signature(
    payload: bytes | str,
    sig_header: str | None,
    secrets: Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check that the raw ``payload`` was signed by Stripe recently under one of ``secrets``; raise or ``None``.

    Verify before parsing (re-serialised JSON no longer matches). :class:`WebhookSignatureError`'s
    ``reason``, first failure wins: ``no_secret`` (config, never masked by a bad request),
    ``missing_header``, ``malformed_header``, ``no_v1_signature``, ``no_match``, then
    ``timestamp_too_old`` / ``timestamp_in_future``. Wrong argument types raise ``TypeError``/``ValueError``.
    """
    _check_tolerance(tolerance)
    body = _body_bytes(payload)
    keys = parse_webhook_secrets(secrets)
    if not keys:
        raise WebhookSignatureError(
            WebhookSignatureReason.NO_SECRET,
            "No webhook signing secret is configured, so no Stripe signature can be verified. Set the "
            "endpoint's signing secret ('whsec_...', shown for the endpoint in the Stripe Dashboard, or "
            "printed by 'stripe listen') on the connection.",
        )
    timestamp, signatures = _v1_signatures(sig_header)
    # Compare bytes: hmac.compare_digest refuses non-ASCII str, and the header is attacker-controlled.
    candidates = [signature.encode("utf-8") for signature in signatures]
    expected = [_signature(key, timestamp, body).encode("ascii") for key in keys]
    # A list, not any(): every pair is compared, so the time taken says nothing about which matched.
    if not any([hmac.compare_digest(e, c) for e in expected for c in candidates]):
        raise WebhookSignatureError(
            WebhookSignatureReason.NO_MATCH,
            f"None of the {len(signatures)} '{_SCHEME}' signature(s) in the {SIGNATURE_HEADER!r} header matches "
            f"the payload under any of the {len(keys)} configured secret(s). Check that the connection holds "
            "this endpoint's signing secret (every endpoint, and 'stripe listen', has its own 'whsec_...'; "
            "keep the old one next to the new one while rotating), and that the raw request body is verified "
            "before any parsing, re-encoding or newline/charset conversion.",
        )
    _check_fresh(timestamp, tolerance, time.time() if now is None else now)


def _v1_signatures(sig_header: str | None) -> tuple[int, list[str]]:
    """The header's timestamp and ``v1`` signatures; ``missing_header``, ``malformed_header`` or ``no_v1_signature``."""
    if sig_header is not None and not isinstance(sig_header, str):
        raise TypeError(f"The signature header must be a str, not {type(sig_header).__name__}; decode it first.")
    if sig_header is None or not sig_header.strip():
        raise WebhookSignatureError(
            WebhookSignatureReason.MISSING_HEADER,
            f"The request has no {SIGNATURE_HEADER!r} header (or it is empty), so it cannot be verified as "
            "coming from Stripe. Pass that header's value from the incoming request; if the request lacks it, "
            "it was not sent by Stripe, or a proxy in between drops the header.",
        )
    timestamps: list[str] = []
    signatures: list[str] = []
    others: list[str] = []
    for position, element in enumerate(sig_header.strip().split(","), start=1):
        match = _ELEMENT.fullmatch(element)
        if match is None:
            raise _malformed(f"element {position} is not of the form key=value")
        key, value = match.groups()
        if key == "t":
            timestamps.append(value)
        elif key == _SCHEME:
            signatures.append(value)
        elif key not in others:
            others.append(key)
    if not timestamps:
        raise _malformed("it has no 't' (timestamp) element")
    if len(timestamps) > 1:
        raise _malformed(f"'t' appears {len(timestamps)} times; it must appear once")
    if _UNSIGNED_INT.fullmatch(timestamps[0]) is None:
        raise _malformed("'t' is not an integer number of seconds")
    if not signatures:
        found = f" (it only has: {', '.join(others)})" if others else ""
        raise WebhookSignatureError(
            WebhookSignatureReason.NO_V1_SIGNATURE,
            f"The {SIGNATURE_HEADER!r} header carries no '{_SCHEME}' signature{found}. Stripe signs live "
            f"requests with the '{_SCHEME}' scheme only; check that the request comes from Stripe and that "
            "the header is passed unmodified.",
        )
    return int(timestamps[0]), signatures


def _check_fresh(timestamp: int, tolerance: int, now: float) -> None:
    """``timestamp_too_old`` / ``timestamp_in_future`` when the signed time is beyond ``tolerance`` of ``now``."""
    age = now - timestamp
    if age > tolerance:
        raise WebhookSignatureError(
            WebhookSignatureReason.TIMESTAMP_TOO_OLD,
            f"The signature is authentic but its timestamp (t={timestamp}) is {age:.0f} s old, beyond the "
            f"tolerance of {tolerance} s, so the request may be a replay. If it is not, check this server's "
            "clock (NTP) and verify requests when they arrive, not after queueing them.",
        )
    if -age > tolerance:
        raise WebhookSignatureError(
            WebhookSignatureReason.TIMESTAMP_IN_FUTURE,
            f"The signature is authentic but its timestamp (t={timestamp}) is {-age:.0f} s in the future, "
            f"beyond the tolerance of {tolerance} s. Check this server's clock (NTP).",
        )


def construct_event(
    payload: bytes | str,
    sig_header: str | None,
    secrets: Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify with :func:`verify_signature`, then return the body as a plain ``dict`` (same for any SDK);
    :class:`WebhookPayloadError` when it is not a JSON object."""
    verify_signature(payload, sig_header, secrets, tolerance=tolerance, now=now)
    body = _body_bytes(payload)
    try:
        event = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise WebhookPayloadError(
            "The webhook signature is valid, but the body is not UTF-8 text, so it is not a Stripe event."
        ) from None
    except json.JSONDecodeError as exc:
        raise WebhookPayloadError(
            f"The webhook signature is valid, but the body is not JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}), so it is not a Stripe event."
        ) from None
    if not isinstance(event, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(event), "a number")
        raise WebhookPayloadError(
            f"The webhook signature is valid, but the body is {kind} in JSON, not an object, "
            "so it is not a Stripe event."
        )
    return event


def sign_payload(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """A signature header value for ``payload``, signed as Stripe signs webhooks (one secret, stripped)."""
    if not isinstance(secret, str):
        raise TypeError(f"The webhook secret must be a str, not {type(secret).__name__}.")
    parsed = parse_webhook_secrets(secret)
    if len(parsed) != 1:
        raise ValueError("sign_payload needs exactly one non-empty webhook secret (no commas or whitespace inside it).")
    if timestamp is None:
        timestamp = int(time.time())
    elif isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative int number of unix seconds.")
    return f"t={timestamp},{_SCHEME}={_signature(parsed[0], timestamp, _body_bytes(payload))}"
