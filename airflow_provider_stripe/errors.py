"""Every exception the provider raises, under one root (:class:`StripeProviderError`), each keeping its
stdlib base (``ValueError``, ``RuntimeError``...). Imports only :mod:`.compat`, so any module may import it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum
from typing import Any

from airflow_provider_stripe.compat import AirflowFailException

_KEY_PATTERN = re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+|\b(rt|ac)_[A-Za-z0-9]{8,}")


def redact(text: str) -> str:
    """Replace anything shaped like a Stripe key, webhook secret or OAuth token with its prefix."""

    def _sub(m: re.Match[str]) -> str:
        parts = m.group(0).split("_", 2)
        return ("_".join(parts[:2]) if len(parts) > 2 else parts[0]) + "_***"

    return _KEY_PATTERN.sub(_sub, text)


class StripeProviderError(Exception):
    """Root of every exception of the provider: ``except StripeProviderError`` catches them all."""


class StripeDeterministicError(StripeProviderError, AirflowFailException):
    """An error a retry cannot fix (bad input or connection, a live key with live mode off): an
    ``AirflowFailException``, so Airflow fails the task at once instead of spending its retries."""


class StripeConfigurationError(StripeDeterministicError, ValueError):
    """The ``stripe`` connection is incomplete or invalid; the message names the field."""

    def __init__(self, message: str, *, field: str | None = None, conn_id: str | None = None) -> None:
        self.field = field
        self.problem = redact(message)  # without the connection's name, for messages naming it another way
        where = f"connection {conn_id!r}" if conn_id else "the Stripe connection"
        prefix = f"{where}, field {field!r}: " if field else f"{where}: "
        super().__init__(redact(prefix + message))


class LiveModeNotAllowedError(StripeDeterministicError, PermissionError):
    """A money-moving operator refused a live key on a connection that does not allow live mode."""


class RateLimitWaitExceeded(StripeProviderError, TimeoutError):
    """Waiting for a free slot of the client-side rate limit would exceed the caller's deadline."""


class RateLimitStorageError(StripeProviderError, RuntimeError):
    """The shared rate-limit storage (Redis) failed: no request is sent (fail closed); Airflow retries."""


class StripeInputError(StripeDeterministicError, ValueError):
    """A task input Stripe would refuse (or that would move the wrong amount); ``field`` names the parameter,
    ``index``/``reference`` the batch item."""

    def __init__(self, message: str, *, field: str, index: int | None = None, reference: str | None = None) -> None:
        self.field = field
        self.index = index
        self.reference = reference
        item = f"item {index}, " if index is not None else ""
        ref = f"reference {reference!r}, " if reference is not None else ""
        super().__init__(f"{item}{ref}field {field!r}: {message}")


class StripeBatchInputError(StripeDeterministicError, ValueError):
    """One or more payout instructions are invalid; nothing was sent to Stripe (``errors`` may hold
    fewer than ``total_errors``)."""

    def __init__(
        self,
        errors: Sequence[StripeInputError],
        *,
        invalid_items: int,
        total_items: int,
        total_errors: int | None = None,
    ) -> None:
        self.errors = list(errors)
        self.total_errors = len(self.errors) if total_errors is None else total_errors
        lines = [
            f"{invalid_items} of {total_items} payout instruction(s) are invalid, so no payout was created. "
            "Fix these and run the task again:"
        ]
        lines += [f"  - {e}" for e in self.errors]
        if self.total_errors > len(self.errors):
            lines.append(f"  ... and {self.total_errors - len(self.errors)} more problem(s), listed in the task log")
        super().__init__("\n".join(lines))


class StripeBatchLimitError(StripeDeterministicError, ValueError):
    """A valid payout batch is above the task's ``max_items`` or ``max_total``; nothing was sent, not retried.
    ``problems``: one line per exceeded limit; ``totals``: minor units per currency."""

    def __init__(self, problems: Sequence[str], *, count: int, totals: dict[str, int], totals_text: str) -> None:
        self.problems = list(problems)
        self.count = count
        self.totals = dict(totals)
        lines = ["Payout batch refused by its limits before any request to Stripe: nothing was sent."]
        lines += [f"  - {problem}" for problem in self.problems]
        lines.append(f"The batch: {count} item(s), {totals_text} in total.")
        lines.append(
            "If the instructions are wrong, fix them; if this batch is intended, split it or raise max_items / "
            "max_total on the task, then clear the task."
        )
        super().__init__("\n".join(lines))


class StripeBatchChangedError(StripeDeterministicError, ValueError):
    """The batch's validated instructions are not the ones approved (``approved_digest``); nothing was sent."""

    def __init__(self, *, approved: str, actual: str, count: int, totals_text: str) -> None:
        super().__init__(
            f"Payout batch refused before any request to Stripe: its instructions ({count} item(s), {totals_text}; "
            f"digest {actual[:16]}) are not the ones approved (digest {approved[:16]}), so the source changed after "
            "the approval summary was made. Nothing was sent. Run the DAG again to summarise and approve the current "
            "instructions."
        )


class SourceError(StripeDeterministicError, ValueError):
    """A payout batch's ``payouts`` argument cannot be read (wrong type, missing file, bad JSON array)."""


class PayoutIdsError(StripeProviderError, ValueError):
    """The payout sensor's ``payout_ids`` input is not something it can wait for."""


class WebhookSignatureReason(str, Enum):
    """Why a webhook signature was refused: ``NO_SECRET`` is configuration (500), the rest the request's (400)."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    NO_V1_SIGNATURE = "no_v1_signature"
    NO_SECRET = "no_secret"
    NO_MATCH = "no_match"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"

    def __str__(self) -> str:
        return self.value


class WebhookSignatureError(StripeProviderError, ValueError):
    """A webhook could not be verified as sent by Stripe recently; ``reason`` says which check, never a secret."""

    def __init__(self, reason: WebhookSignatureReason, message: str) -> None:
        super().__init__(message)
        self.reason: WebhookSignatureReason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # picklable: Airflow may pickle task exceptions
        return (type(self), (self.reason, str(self)))


class WebhookPayloadError(StripeProviderError, ValueError):
    """The signature verified, but the body is not a JSON object, so it is not a Stripe event."""


class StripeRequestError(StripeProviderError, RuntimeError):
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
        fields: dict[str, Any] = {"type": error_type, "code": code, "decline_code": decline_code, "param": param}
        fields |= {"http_status": http_status, "request_id": request_id}
        detail = ", ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        super().__init__(redact(f"Stripe {operation} failed" + (f" ({detail})" if detail else "") + f": {message}"))

    @property
    def is_definitive(self) -> bool:
        """Stripe refused for good and created nothing, so a retry may use a fresh key: a 4xx other than
        409/429, except ``idempotency_error`` (key used with other parameters: something may exist under it)."""
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


FAILURES_IN_MESSAGE = 50
"""Failed items a :class:`StripePayoutError` message lists (the results hold all of them)."""


class StripePayoutError(StripeProviderError, RuntimeError):
    """Some payouts failed; the others were created (or found) and are not repeated."""

    def __init__(self, summary: dict[str, Any], failures: list[dict[str, Any]], failed_total: int) -> None:
        self.summary = summary
        self.failures = failures = sorted(failures, key=lambda row: row.get("index", 0))  # input order
        counts = ", ".join(f"{summary.get(k, 0)} {k}" for k in ("created", "existing", "failed", "not_attempted"))
        lines = [f"{failed_total} of {summary['total']} payout(s) failed ({counts})."]
        for row in failures[:FAILURES_IN_MESSAGE]:
            err = row.get("error") or {}
            lines.append(
                f"  - item {row['index']}, reference {row['reference']!r}: "
                + (f"[{err['code']}] " if err.get("code") else "")
                + f"{err.get('message', 'failed')}"
                + (f" -> {err['next']}" if err.get("next") else "")
            )
        if failed_total > FAILURES_IN_MESSAGE:
            lines.append(f"  ... and {failed_total - FAILURES_IN_MESSAGE} more (see the task log / results)")
        if summary.get("not_attempted"):
            lines.append(f"  {summary['not_attempted']} item(s) were not attempted (on_failure='stop').")
        lines.append(self.NEXT)
        super().__init__(redact("\n".join(lines)))

    NEXT = (
        "Airflow retries the task: created payouts are found again and never repeated; items with an unknown "
        "outcome reuse their idempotency key; refused items get a fresh one. The results (outcome, payout id, "
        "status per item) are in the task's XCom."
    )

    @staticmethod
    def for_batch(summary: dict[str, Any], failures: list[dict[str, Any]], failed_total: int) -> StripePayoutError:
        """The error to raise: :class:`StripePayoutRefusedError` when every failure is definitive."""
        definitive = (
            len(failures) == failed_total
            and not summary.get("not_attempted")
            and all(f.get("error", {}).get("definitive") for f in failures)
        )
        return (StripePayoutRefusedError if definitive else StripePayoutError)(summary, failures, failed_total)


class StripePayoutRefusedError(StripePayoutError, AirflowFailException):
    """Every failed item was refused definitively (nothing paid): not retried, as fresh keys would be refused again."""

    NEXT = (
        "Not retried: Stripe refused these items definitively and nothing was paid for them. Fix the cause, then "
        "clear the task: created payouts are found again and never repeated; refused items get a fresh key. "
        "The results (outcome, payout id, status per item) are in the task's XCom."
    )


class StripeDuplicatePayoutError(StripeDeterministicError):
    """A protected reference has more than one payout that moved money: a human must look (not retried)."""

    def __init__(self, paid_twice: dict[str, list[str]]) -> None:
        self.paid_twice = paid_twice
        lines = [f"{len(paid_twice)} reference(s) of this batch have more than one payout that moved money:"]
        lines += [f"  - reference {ref!r}: payouts {', '.join(ids)}" for ref, ids in sorted(paid_twice.items())]
        lines.append(
            "Cancel the extra payout(s) in the Stripe Dashboard while pending. Was one made by a run without "
            "cross-run protection, under another reference_scope, or outside this provider?"
        )
        super().__init__(redact("\n".join(lines)))


def from_stripe_error(exc: BaseException, operation: str) -> StripeRequestError:
    """Convert a ``stripe.StripeError`` (or a network error) into a :class:`StripeRequestError`."""
    import stripe

    if isinstance(exc, stripe.StripeError):
        err = exc.error  # None, or a StripeObject: getattr(None, name, None) is None too
        error_type = getattr(err, "type", None)
        if error_type is None:
            error_type = {
                stripe.APIConnectionError: "api_connection_error",
                stripe.AuthenticationError: "authentication_error",
                stripe.RateLimitError: "rate_limit_error",
            }.get(type(exc), type(exc).__name__)
        return StripeRequestError(
            operation=operation,
            error_type=error_type,
            code=exc.code or getattr(err, "code", None),
            message=str(getattr(err, "message", None) or exc.user_message or str(exc)),
            request_id=exc.request_id,
            http_status=exc.http_status,
            decline_code=getattr(err, "decline_code", None),
            param=getattr(err, "param", None),
        )
    unknown = dict.fromkeys(("code", "request_id", "http_status"))  # a network error carries none of these
    return StripeRequestError(operation=operation, error_type=type(exc).__name__, message=str(exc), **unknown)


class StripeReportNotAvailableError(StripeProviderError, RuntimeError):
    """Stripe has no report data for (all of) the requested interval yet; a later retry may succeed."""


class StripeReportRunFailedError(StripeProviderError, RuntimeError):
    """Stripe ran the report and it failed (``status: failed``); the message is Stripe's ``error``."""
