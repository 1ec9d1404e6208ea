"""Find the payouts an earlier attempt of this run already created, by listing them.

Idempotency keys protect a retry for about 24 h; after that (or if the state store was
cleared), the only record of what was paid is Stripe itself. Every payout of a run
carries the item's reference and the run's tag in its metadata
(:meth:`~airflow_provider_stripe.idempotency.PayoutIdentity.stamp`), so listing the
payouts created since the run began, with the SDK's auto-pagination, finds them.

The listing asks Stripe for ``created[gte]=<window start>`` (newest first, so it stops at
the window's edge). Some Stripe-compatible servers (localstripe) refuse that filter: when
the connection does not point at Stripe itself, the listing then runs unfiltered, skips
payouts older than the window and stops once the order shows it has gone past the window
(newest first); with oldest-first order it reads everything: correct, only slower.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.errors import from_stripe_error
from airflow_provider_stripe.idempotency import REFERENCE_METADATA_KEY, RUN_METADATA_KEY, PayoutIdentity
from airflow_provider_stripe.sdk_compat import read_field

if TYPE_CHECKING:
    from stripe import StripeClient

PAGE_SIZE = 100


@dataclass(frozen=True)
class PayoutFacts:
    """The parts of a payout the batch keeps (never the whole Stripe object)."""

    id: str
    amount: int
    currency: str
    status: str
    created: int

    @classmethod
    def of(cls, payout: Any) -> PayoutFacts:
        """Extract the facts from a Stripe payout object (or a dict)."""
        return cls(
            id=str(read_field(payout, "id")),
            amount=int(read_field(payout, "amount")),
            currency=str(read_field(payout, "currency")),
            status=str(read_field(payout, "status")),
            created=int(read_field(payout, "created") or 0),
        )


@dataclass
class Reconciliation:
    """Payouts of this run found in Stripe, by reference; ``duplicates`` counts extra ones."""

    found: dict[str, PayoutFacts]
    listed: int
    duplicates: dict[str, list[str]]
    filtered_by_server: bool


def _iter_payouts(client: StripeClient, since: int, allow_unfiltered: bool) -> tuple[Iterator[Any], bool]:
    """Payouts created at or after ``since``: server-filtered if supported, else unfiltered."""
    import stripe

    try:
        page = client.v1.payouts.list({"created": {"gte": since}, "limit": PAGE_SIZE})
        return page.auto_paging_iter(), True
    except stripe.InvalidRequestError as exc:
        if not allow_unfiltered or ("created" not in str(exc.user_message or exc) and exc.param != "created"):
            raise
    page = client.v1.payouts.list({"limit": PAGE_SIZE})
    return page.auto_paging_iter(), False


def find_existing(
    client: StripeClient, identity: PayoutIdentity, since: int, *, allow_unfiltered: bool = False
) -> Reconciliation:
    """List this run's payouts created since ``since`` (Unix time) and index them by reference.

    :param allow_unfiltered: if the server refuses the ``created`` filter, list without it
        (for Stripe-compatible test servers; against Stripe an error stays an error).
    """
    import stripe

    tag = identity.tag
    found: dict[str, PayoutFacts] = {}
    duplicates: dict[str, list[str]] = {}
    listed = 0
    try:
        payouts, filtered = _iter_payouts(client, since, allow_unfiltered)
        in_window_seen = False
        for payout in payouts:
            listed += 1
            created = int(read_field(payout, "created") or 0)
            if created < since:
                if in_window_seen:
                    break  # newest first and past the window: nothing older can match
                continue
            in_window_seen = True
            metadata = read_field(payout, "metadata") or {}
            if read_field(metadata, RUN_METADATA_KEY) != tag:
                continue
            reference = str(read_field(metadata, REFERENCE_METADATA_KEY))
            existing = PayoutFacts.of(payout)
            if reference in found:
                duplicates.setdefault(reference, [found[reference].id]).append(existing.id)
                continue
            found[reference] = existing
    except stripe.StripeError as exc:
        raise from_stripe_error(exc, "payout listing (to find payouts of an earlier attempt)") from None
    return Reconciliation(found=found, listed=listed, duplicates=duplicates, filtered_by_server=filtered)
