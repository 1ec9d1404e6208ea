"""Find the payouts an earlier attempt of this run -- or another run or DAG -- already created.

Idempotency keys protect a payment for about 24 h; after that (or if the state store was
cleared), the only record of what was paid is Stripe itself. Every payout carries the
item's reference, the task instance's tag, the scope name of a protected reference, the
DAG id and the run id in its metadata
(:meth:`~airflow_provider_stripe.payouts.keys.PayoutIdentity.stamp`), so listing the
payouts created since a moment, with the SDK's auto-pagination, finds them.

**Cross-run protection** (:class:`CrossRun`): a protected reference
(:meth:`CrossRun.scope_for`) is sent under its *reference key*, the same for every run in
its :class:`~airflow_provider_stripe.payouts.keys.ReferenceScope`, so two runs racing
are told apart by Stripe at creation (see :mod:`airflow_provider_stripe.hooks.idempotency`).
The listing adds what the keys no longer know: a payout whose metadata names the same
scope (an unprotected payout counts in ``dag:<its DAG>``) and reference but another task
instance, created within the look-back, is indexed as paid by that run -- unless its
status is ``failed`` or ``canceled`` (:data:`NOT_PAID_STATUSES`: the money did not
leave, so it does not block a new payout).
Two payouts made under protection that moved money for one reference are duplicates.

The listing asks Stripe for ``created[gte]=<start>``, 100 per page, newest first: it
costs ``ceil(payouts in the window / 100)`` ``GET /v1/payouts`` requests -- all payouts
of the account (or connected account) in the window, because Stripe cannot filter
payouts by metadata. A connected account's batch lists that account's payouts only
(``Stripe-Account``), as its keys are that account's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_stripe.compat import read_field
from airflow_provider_stripe.constants import PAGE_SIZE
from airflow_provider_stripe.payouts.keys import (
    ACCOUNT_SCOPE,
    DAG_METADATA_KEY,
    DAG_RUN_METADATA_KEY,
    REFERENCE_METADATA_KEY,
    RUN_METADATA_KEY,
    SCOPE_METADATA_KEY,
    PayoutIdentity,
    ReferenceScope,
)

if TYPE_CHECKING:
    from airflow_provider_stripe.hooks.requests import StripeRequests


CROSS_RUN_LOOKBACK = timedelta(days=7)
"""Default look-back of cross-run protection: a reference paid by another run in its scope in
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

    @property
    def moved_money(self) -> bool:
        """False once the payout ``failed`` or was ``canceled``."""
        return self.status not in NOT_PAID_STATUSES


@dataclass(frozen=True)
class PaidByRun:
    """A protected reference's payout made by another task instance (what protection refuses on)."""

    dag_id: str
    run_id: str
    payout: PayoutFacts


@dataclass(frozen=True)
class CrossRun:
    """Cross-run protection of one batch: which items it covers, in which scope, how far back it looks.

    :param protect: ``explicit`` (the default mode): items with a reference of their own;
        ``all``: content-hash references too (the same payout contents are refused again
        by any run of the DAG).
    :param lookback: how far before the run's first try another run's payouts count (the
        keys cover the last ~24 h in any case).
    :param reference_scope: the scope of explicit references; ``None``: the whole Stripe
        account (:data:`~airflow_provider_stripe.payouts.keys.ACCOUNT_SCOPE`), whichever DAG pays.
    :param account: the connected account paying (``None``: the platform).
    :param dag_id: the DAG (content-hash references are protected within it).
    """

    protect: Literal["explicit", "all"]
    lookback: timedelta = CROSS_RUN_LOOKBACK
    reference_scope: str | None = None
    account: str | None = None
    dag_id: str = ""

    def scope_for(self, explicit_reference: bool) -> ReferenceScope | None:
        """The scope protecting an item (with or without an explicit reference), ``None`` if unprotected."""
        if explicit_reference:
            return ReferenceScope(self.reference_scope or ACCOUNT_SCOPE, self.account)
        if self.protect == "all":
            return ReferenceScope(f"dag:{self.dag_id}", self.account)
        return None

    @property
    def scope_names(self) -> frozenset[str]:
        """Every scope name this batch's items can be protected in."""
        names = {self.reference_scope or ACCOUNT_SCOPE}
        if self.protect == "all":
            names.add(f"dag:{self.dag_id}")
        return frozenset(names)


@dataclass
class Reconciliation:
    """What one listing found, by reference.

    :param found: this task instance's payouts (its tag), newest per reference.
    :param other_runs: with cross-run protection, per ``(scope name, reference)``, the
        newest payout that moved money made by another task instance since
        ``other_runs_since`` (Unix time).
    :param duplicates: references with more than one payout of this task instance, or
        more than one payout that moved money in a protected scope: payout ids.
    """

    found: dict[str, PayoutFacts]
    listed: int
    duplicates: dict[str, list[str]]
    other_runs: dict[tuple[str, str], PaidByRun] = field(default_factory=dict)
    other_runs_since: int | None = None
    pages: int = 0


def find_existing(
    requests: StripeRequests,
    identity: PayoutIdentity,
    since: int,
    *,
    cross_run: CrossRun | None = None,
    other_runs_since: int | None = None,
) -> Reconciliation:
    """List payouts created since the earlier of ``since`` and ``other_runs_since`` (Unix times), once.

    This task instance's payouts (its tag) are indexed by reference from ``since``; with
    ``cross_run`` and ``other_runs_since``, so are the payouts of other task instances in
    the batch's scopes (see the module docstring) from that time on.
    """
    tag = identity.tag
    found: dict[str, PayoutFacts] = {}
    own_extra: dict[str, list[str]] = {}
    other_runs: dict[tuple[str, str], PaidByRun] = {}
    protected: dict[tuple[str, str], list[str]] = {}  # payouts made under protection that moved money
    names = cross_run.scope_names if cross_run is not None and other_runs_since is not None else frozenset()
    start = since if not names or other_runs_since is None else min(since, other_runs_since)
    listed = 0
    for payout in requests.list_all("payouts", {"created": {"gte": start}, "limit": PAGE_SIZE}):
        listed += 1
        metadata = read_field(payout, "metadata") or {}
        reference = str(read_field(metadata, REFERENCE_METADATA_KEY))
        stamped = read_field(metadata, SCOPE_METADATA_KEY)
        # An unprotected payout (no scope stamp) still belongs to its DAG's scope.
        scope = str(stamped or f"dag:{read_field(metadata, DAG_METADATA_KEY)}")
        facts = PayoutFacts.of(payout)
        if stamped and facts.moved_money and scope in names:
            protected.setdefault((scope, reference), []).append(facts.id)
        if read_field(metadata, RUN_METADATA_KEY) == tag:
            if reference in found:
                own_extra.setdefault(reference, []).append(facts.id)
            else:
                found[reference] = facts
        elif scope in names and facts.moved_money and facts.created >= (other_runs_since or 0):
            run_id = str(read_field(metadata, DAG_RUN_METADATA_KEY) or "?")
            paid = PaidByRun(str(read_field(metadata, DAG_METADATA_KEY) or "?"), run_id, facts)
            other_runs.setdefault((scope, reference), paid)  # newest first: the first seen is kept
    duplicates = {ref: [found[ref].id, *ids] for ref, ids in own_extra.items()}
    for (_scope, ref), ids in protected.items():
        if len(ids) > 1:
            duplicates.setdefault(ref, []).extend(ids)
    duplicates = {ref: list(dict.fromkeys(ids)) for ref, ids in duplicates.items()}
    return Reconciliation(
        found=found,
        listed=listed,
        duplicates=duplicates,
        other_runs=other_runs,
        other_runs_since=other_runs_since,
        pages=-(-listed // PAGE_SIZE) if listed else 1,
    )
