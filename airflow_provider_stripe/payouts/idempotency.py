"""Which idempotency key a payout uses, and how a retry finds payouts again without it.

The key rules are the provider's general ones (:mod:`airflow_provider_stripe.idempotency`):
a payout's key is derived from the run's identity, the item's ``reference`` and a
per-item *generation* (a fresh one after a definitive refusal, the same one after a lost
response). This module adds what only payouts need:

* every payout carries the reference and a tag of the run identity in its metadata
  (:meth:`PayoutIdentity.stamp`), so a retry after Stripe forgot the keys (~24 h) still
  finds what was paid by listing payouts (:mod:`airflow_provider_stripe.payouts.reconcile`);
* the listing window (:meth:`PayoutIdentity.window_start`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow_provider_stripe.idempotency import RunIdentity

REFERENCE_METADATA_KEY = "airflow_payout_ref"
"""Payout metadata key holding the item's reference."""

RUN_METADATA_KEY = "airflow_payout_run"
"""Payout metadata key holding :attr:`RunIdentity.tag`."""

RESERVED_METADATA_KEYS = (REFERENCE_METADATA_KEY, RUN_METADATA_KEY)

WINDOW_SLACK = timedelta(minutes=10)
"""Listing starts this long before the run's earliest known time (clock skew between hosts)."""

KEY_SCOPE = "payout"
"""Payout keys are ``airflow-payout-<sha256>`` (unchanged since the first release)."""


class PayoutIdentity(RunIdentity):
    """A :class:`RunIdentity` with the payout key, metadata stamp and listing window."""

    def payout_key(self, reference: str, generation: int) -> str:
        """The ``Idempotency-Key`` of one item's payout at one generation. Never log it."""
        return self.idempotency_key(KEY_SCOPE, reference, generation)

    def stamp(self, reference: str) -> dict[str, str]:
        """The metadata every payout of this run carries, to be found again by listing."""
        return {REFERENCE_METADATA_KEY: reference, RUN_METADATA_KEY: self.tag}

    def window_start(self, first_attempt: datetime | None = None) -> int:
        """Unix time from which a retry lists payouts: the run's earliest time, minus slack."""
        start = min(t for t in (self.earliest, first_attempt) if t is not None)
        return int((start - WINDOW_SLACK).timestamp())
