"""Find the payouts this run, or another run or DAG, already created: keys protect ~24 h, past that payouts
are listed by their metadata (:meth:`~airflow_provider_stripe.payouts.keys.PayoutIdentity.stamp`).
See docs/payout-safety.md."""

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
        return cls(
            id=str(read_field(payout, "id")),
            amount=int(read_field(payout, "amount")),
            currency=str(read_field(payout, "currency")),
            status=str(read_field(payout, "status")),
            created=int(read_field(payout, "created") or 0),
        )

    @property
    def moved_money(self) -> bool:
        return self.status not in NOT_PAID_STATUSES


@dataclass(frozen=True)
class PaidByRun:
    """A protected reference's payout made by another task instance (what protection refuses on)."""

    dag_id: str
    run_id: str
    payout: PayoutFacts


@dataclass(frozen=True)
class CrossRun:
    """Cross-run protection of one batch: ``protect`` ``explicit`` (items with their own reference) or ``all``
    (content-hash references too); ``reference_scope`` of explicit references (``None``: :data:`ACCOUNT_SCOPE`)."""

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
        return frozenset(scope.name for scope in (self.scope_for(True), self.scope_for(False)) if scope is not None)


@dataclass
class PayoutListing:
    """What one listing of payouts found, by reference: this task instance's (``found``), other runs'
    in a protected scope that moved money (``other_runs``), and references paid more than once."""

    found: dict[str, PayoutFacts]
    listed: int
    duplicates: dict[str, list[str]]
    other_runs: dict[tuple[str, str], PaidByRun] = field(default_factory=dict)
    pages: int = 0


def find_existing(
    requests: StripeRequests,
    identity: PayoutIdentity,
    since: int,
    *,
    cross_run: CrossRun | None = None,
    other_runs_since: int | None = None,
) -> PayoutListing:
    """List payouts once, from the earlier of ``since`` (this task instance's) and ``other_runs_since``
    (other runs' in the batch's scopes, with ``cross_run``), both Unix times."""
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
    return PayoutListing(found, listed, duplicates, other_runs, pages=-(-listed // PAGE_SIZE) if listed else 1)
