"""Errors a user can act on: what failed, which field or item, what to do.

Stripe SDK errors are turned into :class:`StripeRequestError`, whose message names the
Stripe error type, code, message and request id, and never the API key.

Deterministic errors (bad input, an unreadable instructions file, an invalid connection, a
live key where live mode is off) derive from :class:`StripeDeterministicError`, an
``AirflowFailException``: Airflow fails the task at once instead of retrying what cannot
succeed. Fix the cause, then clear the task.
"""

from __future__ import annotations

import re
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

_KEY_PATTERN = re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+|\b(rt|ac)_[A-Za-z0-9]{8,}")


def redact(text: str) -> str:
    """Replace anything shaped like a Stripe key, webhook secret or OAuth token with its prefix."""

    def _sub(m: re.Match[str]) -> str:
        token = m.group(0)
        prefix = token.split("_", 2)
        kept = "_".join(prefix[:2]) + "_" if len(prefix) > 2 else prefix[0] + "_"
        return kept + "***"

    return _KEY_PATTERN.sub(_sub, text)


class StripeDeterministicError(AirflowFailException):
    """An error a retry cannot fix: the task fails without using its retries (``AirflowFailException``)."""


class StripeConfigurationError(StripeDeterministicError, ValueError):
    """The ``stripe`` connection is incomplete or invalid; the message names the field."""

    def __init__(self, message: str, *, field: str | None = None, conn_id: str | None = None) -> None:
        self.field = field
        self.conn_id = conn_id
        where = f"connection {conn_id!r}" if conn_id else "the Stripe connection"
        prefix = f"{where}, field {field!r}: " if field else f"{where}: "
        super().__init__(redact(prefix + message))


class LiveModeNotAllowedError(StripeDeterministicError, PermissionError):
    """A money-moving operator refused a live key on a connection that does not allow live mode."""


class StripeRequestError(RuntimeError):
    """A Stripe API request failed; carries the Stripe error's fields, never the key."""

    def __init__(
        self,
        *,
        operation: str,
        error_type: str | None,
        code: str | None,
        message: str,
        request_id: str | None,
        http_status: int | None,
        decline_code: str | None = None,
        param: str | None = None,
    ) -> None:
        self.operation = operation
        self.error_type = error_type
        self.code = code
        self.stripe_message = message
        self.request_id = request_id
        self.http_status = http_status
        self.decline_code = decline_code
        self.param = param
        parts = [f"Stripe {operation} failed"]
        detail = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("type", error_type),
                ("code", code),
                ("decline_code", decline_code),
                ("param", param),
                ("http_status", http_status),
                ("request_id", request_id),
            )
            if v is not None
        )
        if detail:
            parts.append(f" ({detail})")
        parts.append(f": {message}")
        super().__init__(redact("".join(parts)))

    @property
    def is_definitive(self) -> bool:
        """True when Stripe refused the request for good and created nothing.

        A client error (4xx other than 409/429), except ``idempotency_error``: that one
        says the key was already used with *other* parameters, so something may exist
        under it. A definitive result is what Stripe saves and replays for the
        idempotency key; a retry of the same request needs a fresh key once the cause is
        fixed (:func:`airflow_provider_stripe.idempotency.allows_fresh_key`).
        """
        if self.error_type == "idempotency_error":
            return False
        return self.http_status is not None and 400 <= self.http_status < 500 and self.http_status not in (409, 429)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.error_type,
            "code": self.code,
            "message": redact(self.stripe_message),
            "request_id": self.request_id,
            "http_status": self.http_status,
        }


def from_stripe_error(exc: BaseException, operation: str) -> StripeRequestError:
    """Convert a ``stripe.StripeError`` (or a network error) into a :class:`StripeRequestError`."""
    import stripe

    if isinstance(exc, stripe.StripeError):
        err = exc.error
        error_type = getattr(err, "type", None) if err is not None else None
        code = exc.code or (getattr(err, "code", None) if err is not None else None)
        message = (getattr(err, "message", None) if err is not None else None) or exc.user_message or str(exc)
        if error_type is None:
            error_type = {
                stripe.APIConnectionError: "api_connection_error",
                stripe.AuthenticationError: "authentication_error",
                stripe.RateLimitError: "rate_limit_error",
            }.get(type(exc), type(exc).__name__)
        return StripeRequestError(
            operation=operation,
            error_type=error_type,
            code=code,
            message=str(message),
            request_id=exc.request_id,
            http_status=exc.http_status,
            decline_code=getattr(err, "decline_code", None) if err is not None else None,
            param=getattr(err, "param", None) if err is not None else None,
        )
    return StripeRequestError(
        operation=operation,
        error_type=type(exc).__name__,
        code=None,
        message=str(exc),
        request_id=None,
        http_status=None,
    )
