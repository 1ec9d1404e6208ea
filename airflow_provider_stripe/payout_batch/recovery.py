"""Find the payouts an earlier attempt of this run already created, by listing them.

Idempotency keys protect a retry for about 24 h; after that (or if the state store was
cleared), the only record of what was paid is Stripe itself. Every payout of a run
carries the item's reference and the run's tag in its metadata
(:meth:`~airflow_provider_stripe.idempotency.PayoutIdentity.stamp`), so listing the
payouts created since the run began, with the SDK's auto-pagination, finds them.

The listing asks Stripe for ``created[gte]=<window start>``, so it reads only the payouts
of the window, 100 per page, newest first.
"""

from __future__ import annotations

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


def find_existing(client: StripeClient, identity: PayoutIdentity, since: int) -> Reconciliation:
    """List this run's payouts created since ``since`` (Unix time) and index them by reference."""
    import stripe

    tag = identity.tag
    found: dict[str, PayoutFacts] = {}
    duplicates: dict[str, list[str]] = {}
    listed = 0
    try:
        page = client.v1.payouts.list({"created": {"gte": since}, "limit": PAGE_SIZE})
        for payout in page.auto_paging_iter():
            listed += 1
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
    return Reconciliation(found=found, listed=listed, duplicates=duplicates)
