"""Find the payouts an earlier attempt of this run -- or another run of the DAG -- already created.

Idempotency keys protect a retry for about 24 h; after that (or if the state store was
cleared), the only record of what was paid is Stripe itself. Every payout of a run
carries the item's reference, the run's tag, the DAG id and the run id in its metadata
(:meth:`~airflow_provider_stripe.idempotency.PayoutIdentity.stamp`), so listing the
payouts created since the run began, with the SDK's auto-pagination, finds them.

**Cross-run protection** (:class:`CrossRun`) uses the same, single listing: it starts at
the earlier of the run's window and ``first try - lookback``, and a payout whose metadata
names this DAG and *another* run id is indexed by reference as paid by that run -- unless
its status is ``failed`` or ``canceled`` (:data:`NOT_PAID_STATUSES`: the money did not
leave, so it does not block a new payout). Keys are per run, so nothing else stops a
re-triggered run from paying the same references again.

The listing asks Stripe for ``created[gte]=<window start>``, so it reads only the payouts
of the window, 100 per page, newest first: it costs ``ceil(payouts in the window / 100)``
``GET /v1/payouts`` requests per try -- all payouts of the account (or connected account)
in the window, not only this DAG's, because Stripe cannot filter payouts by metadata. A
connected account's batch lists that account's payouts only (``Stripe-Account``), so a
payout of another account never blocks nor is found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.errors import from_stripe_error
from airflow_provider_stripe.idempotency import (
    DAG_METADATA_KEY,
    DAG_RUN_METADATA_KEY,
    REFERENCE_METADATA_KEY,
    RUN_METADATA_KEY,
    PayoutIdentity,
)
from airflow_provider_stripe.sdk_compat import read_field

if TYPE_CHECKING:
    from stripe import StripeClient

PAGE_SIZE = 100

CROSS_RUN_LOOKBACK = timedelta(days=7)
"""Default look-back of cross-run protection: a reference paid by another run of the DAG in
the 7 days before this run's first try is not paid again."""

MAX_CROSS_RUN_LOOKBACK = timedelta(days=31)
"""Longest look-back accepted: a monthly schedule is covered; every try lists the whole window."""

NOT_PAID_STATUSES = frozenset({"failed", "canceled"})
"""Payout statuses that moved no money: such a payout of another run does not block a reference."""


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


@dataclass(frozen=True)
class PaidByRun:
    """A reference's payout made by another run of the same DAG (what cross-run protection refuses on)."""

    run_id: str
    payout: PayoutFacts


@dataclass(frozen=True)
class CrossRun:
    """Cross-run protection of one batch: which items it covers and how far back it looks.

    :param protect: ``explicit`` (the default mode): items with a reference of their own;
        ``all``: content-hash references too (the same payout contents are refused again).
    :param lookback: how far before the run's first try another run's payouts count.
    """

    protect: Literal["explicit", "all"]
    lookback: timedelta = CROSS_RUN_LOOKBACK

    def covers(self, explicit_reference: bool) -> bool:
        """Whether an item (with or without an explicit reference) is protected."""
        return self.protect == "all" or explicit_reference


@dataclass
class Reconciliation:
    """Payouts of this run found in Stripe, by reference; ``duplicates`` counts extra ones.

    ``other_runs``: with cross-run protection, the newest payout that moved money for each
    reference paid by another run of the DAG since ``other_runs_since`` (Unix time).
    """

    found: dict[str, PayoutFacts]
    listed: int
    duplicates: dict[str, list[str]]
    other_runs: dict[str, PaidByRun] = field(default_factory=dict)
    other_runs_since: int | None = None
    pages: int = 0


def find_existing(
    client: StripeClient, identity: PayoutIdentity, since: int, *, other_runs_since: int | None = None
) -> Reconciliation:
    """List payouts created since the earlier of ``since`` and ``other_runs_since`` (Unix times), once.

    This run's payouts (its tag) are indexed by reference from ``since``; with
    ``other_runs_since``, so are payouts of other runs of the same DAG (see the module
    docstring) from that time on.
    """
    import stripe

    tag = identity.tag
    found: dict[str, PayoutFacts] = {}
    duplicates: dict[str, list[str]] = {}
    other_runs: dict[str, PaidByRun] = {}
    start = since if other_runs_since is None else min(since, other_runs_since)
    listed = 0
    try:
        page = client.v1.payouts.list({"created": {"gte": start}, "limit": PAGE_SIZE})
        pages = 1
        for payout in page.auto_paging_iter():
            listed += 1
            pages = 1 + (listed - 1) // PAGE_SIZE  # Stripe's pages are full but for the last
            metadata = read_field(payout, "metadata") or {}
            reference = str(read_field(metadata, REFERENCE_METADATA_KEY))
            if read_field(metadata, RUN_METADATA_KEY) == tag:
                existing = PayoutFacts.of(payout)
                if reference in found:
                    duplicates.setdefault(reference, [found[reference].id]).append(existing.id)
                    continue
                found[reference] = existing
            elif other_runs_since is not None and reference not in other_runs:
                other = _paid_by_other_run(payout, metadata, identity, other_runs_since)
                if other is not None:
                    other_runs[reference] = other
    except stripe.StripeError as exc:
        raise from_stripe_error(exc, "payout listing (to find payouts of earlier attempts and runs)") from None
    return Reconciliation(
        found=found,
        listed=listed,
        duplicates=duplicates,
        other_runs=other_runs,
        other_runs_since=other_runs_since,
        pages=pages,
    )


def _paid_by_other_run(payout: Any, metadata: Any, identity: PayoutIdentity, since: int) -> PaidByRun | None:
    """The payout as paid by another run of this DAG, or ``None`` (not this DAG's, same run, no money moved)."""
    if read_field(metadata, DAG_METADATA_KEY) != identity.dag_id:
        return None
    run_id = read_field(metadata, DAG_RUN_METADATA_KEY)
    # The same run's other task instances (mapped chunks) are not "another run".
    if not run_id or str(run_id) == identity.dag_run_id:
        return None
    facts = PayoutFacts.of(payout)
    if facts.status in NOT_PAID_STATUSES or facts.created < since:
        return None
    return PaidByRun(run_id=str(run_id), payout=facts)
