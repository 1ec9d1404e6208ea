"""When is a set of Stripe payouts done? One answer (:meth:`PayoutWatch.observe`), shared by the sensor
and the trigger: ``failure`` as soon as one is ``failed``, ``canceled`` or unknown (waiting cannot help);
``success`` once all are ``paid`` and past the settle period after ``arrival_date`` (a paid payout can
still fail for a few business days); else ``waiting``. Pure Python: no Stripe SDK, no Airflow."""

from __future__ import annotations

import ast
import contextlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from airflow_provider_stripe.compat import read_field
from airflow_provider_stripe.errors import PayoutIdsError

PAID = "paid"
FAILED_STATUSES: frozenset[str] = frozenset({"failed", "canceled"})
"""Final statuses that mean the money did not arrive."""
NOT_FOUND = "not_found"
"""Pseudo-status of an id Stripe does not know (on this account)."""

PAYOUT_ID_PREFIX = "po_"
_RESULT_LIST_KEYS = ("results", "items", "payouts")

VerdictState = Literal["success", "failure", "waiting"]
"""Where the watched payouts stand: all paid, one failed, or some still on their way."""


def normalize_payout_ids(value: Any) -> tuple[str, ...]:
    """The payout ids in ``value`` (an id, a list, the batch operator's result or one of its items, or any
    of these as JSON or Python-literal text), de-duplicated, in order; items without a ``payout_id`` are skipped."""
    ids: dict[str, None] = {}
    for item in _flatten(_parse_text(value)):
        if not item.startswith(PAYOUT_ID_PREFIX) or len(item) <= len(PAYOUT_ID_PREFIX):
            raise PayoutIdsError(
                f"{item!r} is not a Stripe payout id ({PAYOUT_ID_PREFIX}...): pass payout ids, or the result of "
                "StripePayoutBatchOperator (e.g. payout_ids=create_payouts.output)"
            )
        ids[item] = None
    return tuple(ids)


def _parse_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text.startswith(("[", "{", "(")):
        return text
    with contextlib.suppress(ValueError):
        return json.loads(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise PayoutIdsError(
            f"payout_ids text {text[:80]!r} is neither JSON nor a Python literal; pass the XCom itself "
            "(payout_ids=create_payouts.output) rather than a rendered string"
        ) from None


def _flatten(value: Any) -> Iterable[str]:
    if value is None:
        return
    if isinstance(value, str):
        if value.strip():
            yield value.strip()
        return
    if isinstance(value, Mapping):
        if "payout_id" in value or "outcome" in value:  # one item's result
            if value.get("payout_id"):
                yield str(value["payout_id"])
            return
        summary = value.get("summary")
        if isinstance(summary, Mapping) and summary.get("results_path"):  # every item's result, streamed there
            from airflow_provider_stripe.payouts.sources import iter_source

            yield from _flatten(iter_source(str(summary["results_path"])))
            return
        if isinstance(summary, Mapping) and summary.get("results_truncated"):
            raise PayoutIdsError(
                "the batch result lists only its failed items (the batch exceeded its inline_limit), so the "
                "created payout ids are not in it: set results_path on StripePayoutBatchOperator and the sensor "
                "reads every payout id from that file"
            )
        for key in _RESULT_LIST_KEYS:
            if key in value:
                yield from _flatten(value[key])
                return
        raise PayoutIdsError(
            f"payout_ids got a dict with keys {sorted(map(str, value))[:10]} but no payout_id and no "
            f"{'/'.join(_RESULT_LIST_KEYS)} list: pass payout ids or the batch operator's result"
        )
    if isinstance(value, Iterable):
        for item in value:
            yield from _flatten(item)
        return
    raise PayoutIdsError(f"payout_ids must be ids, a list of ids or a batch result, not {type(value).__name__}")


@dataclass(frozen=True)
class PayoutSnapshot:
    """The fields of a Stripe payout that decide the wait (safe to log and put in XCom)."""

    payout_id: str
    status: str
    failure_code: str | None = None
    failure_message: str | None = None
    amount: int | None = None
    currency: str | None = None
    arrival_date: int | None = None
    was_paid: bool = False
    """Seen ``paid`` earlier in this wait (a ``failed`` status is then Stripe reversing a paid payout)."""

    @classmethod
    def from_stripe(cls, payout: Any) -> PayoutSnapshot:
        names = ("failure_code", "failure_message", "amount", "currency", "arrival_date")
        status = str(read_field(payout, "status") or "unknown")
        return cls(payout_id=str(payout["id"]), status=status, **{name: read_field(payout, name) for name in names})

    @classmethod
    def missing(cls, payout_id: str) -> PayoutSnapshot:
        return cls(
            payout_id=payout_id,
            status=NOT_FOUND,
            failure_code="resource_missing",
            failure_message="Stripe has no payout with this id on this account: check the connection and account_id",
        )

    def as_dict(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in ("payout_id", "status", "failure_code", "failure_message")}
        return {**fields, "was_paid": True} if self.was_paid else fields


@dataclass(frozen=True)
class Verdict:
    """The outcome of one observation of the watched payouts."""

    outcome: VerdictState
    payout_ids: tuple[str, ...]
    failures: tuple[PayoutSnapshot, ...] = ()
    waiting: Mapping[str, int] = field(default_factory=dict)
    settle_left: float | None = None

    @property
    def done(self) -> bool:
        return self.outcome != "waiting"

    def result(self) -> dict[str, Any]:
        """What the sensor returns (XCom) on success."""
        return {"status": PAID, "count": len(self.payout_ids), "payout_ids": list(self.payout_ids)}

    def describe(self) -> str:
        if self.outcome == "success":
            return f"all {len(self.payout_ids)} payouts are paid"
        if self.outcome == "failure":
            return describe_failures([f.as_dict() for f in self.failures])
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(self.waiting.items()))
        line = f"{sum(self.waiting.values())} of {len(self.payout_ids)} payouts not settled yet ({counts})"
        if self.settle_left is not None:
            line += f"; the next settle period ends in {self.settle_left:.0f}s"
        return line

    def as_event(self) -> dict[str, Any]:
        """The trigger's event payload for a final verdict (JSON-serialisable, no secrets)."""
        if self.outcome == "failure":
            return {"status": "failure", "message": self.describe(), "failures": [f.as_dict() for f in self.failures]}
        # Ids are left out (a batch can be large): the sensor already has them.
        return {"status": "success", "message": self.describe(), "count": len(self.payout_ids)}


def describe_failures(failures: Iterable[Mapping[str, Any]]) -> str:
    """An actionable message naming every failed payout, its failure code and message."""
    items = list(failures)
    parts = []
    for f in items:
        detail = ", ".join(f"{k}={f[k]}" for k in ("failure_code", "failure_message") if f.get(k) not in (None, ""))
        flipped = " after being paid" if f.get("was_paid") else ""
        parts.append(f"{f['payout_id']} is {f['status']}{flipped}" + (f" ({detail})" if detail else ""))
    noun = "payout" if len(items) == 1 else "payouts"
    reversed_note = (
        " A payout that failed after being paid was reversed by Stripe: its amount is back in the Stripe balance "
        "(a payout_failure balance transaction)."
        if any(f.get("was_paid") for f in items)
        else ""
    )
    return (
        f"{len(items)} Stripe {noun} will not be paid: " + "; ".join(parts) + "." + reversed_note + " Waiting "
        "longer cannot help: fix the cause (e.g. the destination bank account) and create new payouts; this task "
        "is not retried."
    )


@dataclass
class PayoutWatch:
    """What a wait for ``payout_ids`` has observed so far; a paid payout counts ``settle_period`` seconds
    after its ``arrival_date`` (taken as the time it was paid)."""

    payout_ids: tuple[str, ...]
    settle_period: float = 0.0
    arrived: dict[str, float | None] = field(default_factory=dict)
    """Payout id -> ``arrival_date`` of the payouts last seen paid (re-read at every poll)."""

    def _settles_at(self, payout_id: str) -> float:
        """Epoch seconds when a paid payout will count as settled (never without an ``arrival_date``)."""
        arrival = self.arrived[payout_id]
        return float("inf") if arrival is None else arrival + self.settle_period

    def to_poll(self, now: float) -> tuple[str, ...]:
        return tuple(
            p for p in self.payout_ids if p not in self.arrived or (self.settle_period and now < self._settles_at(p))
        )

    def observe(self, polled: Iterable[str], found: Mapping[str, PayoutSnapshot], now: float) -> Verdict:
        """Record the statuses just fetched for ``polled`` ids and decide."""
        failures: list[PayoutSnapshot] = []
        for payout_id in polled:
            snap = found.get(payout_id) or PayoutSnapshot.missing(payout_id)
            if snap.status == PAID:
                self.arrived[payout_id] = None if snap.arrival_date is None else float(snap.arrival_date)
                continue
            was_paid = payout_id in self.arrived  # e.g. paid -> failed while settling
            self.arrived.pop(payout_id, None)
            if snap.status in FAILED_STATUSES or snap.status == NOT_FOUND:
                failures.append(replace(snap, was_paid=was_paid))
        if failures:
            return Verdict("failure", self.payout_ids, failures=tuple(failures))
        unsettled = self.to_poll(now)
        if not unsettled:
            return Verdict("success", self.payout_ids)
        status_of = {p: (found[p].status if p in found else "unknown") for p in unsettled}
        waiting = Counter("paid (settle period)" if status_of[p] == PAID else status_of[p] for p in unsettled)
        settling = [self._settles_at(p) - now for p in unsettled if self.arrived.get(p) is not None]
        return Verdict("waiting", self.payout_ids, waiting=dict(waiting), settle_left=min(settling, default=None))
