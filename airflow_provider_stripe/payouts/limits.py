"""Per-run limits of a payout batch: at most ``max_items`` items and ``max_total`` per currency
(minor units), checked on the validated batch before any request: a guard against a batch far
larger than intended. A currency ``max_total`` does not name is refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_stripe.errors import StripeBatchLimitError, StripeInputError
from airflow_provider_stripe.validation import format_amount, format_totals, validate_currency


@dataclass(frozen=True)
class BatchLimits:
    """A batch's limits, checked (:meth:`from_arguments`); ``None`` means no limit."""

    max_items: int | None = None
    max_total: Mapping[str, int] | None = None

    @classmethod
    def from_arguments(cls, max_items: Any, max_total: Any) -> BatchLimits:
        """Check the operator's ``max_items`` and ``max_total``; raise :class:`StripeInputError` naming the field."""
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
            raise StripeInputError(f"{max_items!r}: use an integer >= 1, or None for no limit", field="max_items")
        if max_total is None:
            return cls(max_items, None)
        if not isinstance(max_total, Mapping) or not max_total:
            raise StripeInputError(
                f"{max_total!r:.80}: use a dict of currency to total in minor units, e.g. {{'eur': 5_000_000}} "
                "(50,000.00 EUR), or None for no limit",
                field="max_total",
            )
        caps: dict[str, int] = {}
        for raw_currency, cap in max_total.items():
            currency = validate_currency(raw_currency, field="max_total")
            if currency in caps:
                raise StripeInputError(f"names {currency!r} twice: keep one cap per currency", field="max_total")
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise StripeInputError(
                    f"{currency}: {cap!r} is not usable: a cap is an integer >= 1 in the currency's minor unit "
                    "(1250 = 12.50 EUR), never rounded",
                    field="max_total",
                )
            caps[currency] = cap
        return cls(max_items, caps)

    def check(self, count: int, totals: Mapping[str, int]) -> None:
        """Raise :class:`StripeBatchLimitError` if the batch (``count`` items, ``totals``) exceeds a limit."""
        problems: list[str] = []
        if self.max_items is not None and count > self.max_items:
            problems.append(f"{count} item(s), above max_items={self.max_items}")
        if self.max_total is not None:
            for currency, total in sorted(totals.items()):
                cap = self.max_total.get(currency)
                if cap is None:
                    problems.append(
                        f"{format_amount(total, currency)} in total, and max_total has no cap for {currency!r} "
                        f"(it caps {', '.join(sorted(self.max_total))})"
                    )
                elif total > cap:
                    problems.append(
                        f"{format_amount(total, currency)} in total, above max_total "
                        f"{format_amount(cap, currency)} ({currency}: {cap})"
                    )
        if problems:
            raise StripeBatchLimitError(problems, count=count, totals=dict(totals), totals_text=format_totals(totals))

    def as_dict(self) -> dict[str, Any]:
        return {"max_items": self.max_items, "max_total": dict(self.max_total) if self.max_total else None}
