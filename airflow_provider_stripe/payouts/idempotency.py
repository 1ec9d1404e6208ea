"""Which idempotency key a payout uses, and when a retry may take a fresh one.

A payout's key is derived from the run's identity (DAG, logical date -- or run id when the
run has none --, task, map index), the item's ``reference`` and a per-item *generation*:

* a retry of the same run derives the same keys, so Stripe replays what the first
  request did instead of paying again, even if its response was lost;
* the next run has another identity, hence other keys;
* Stripe saves the result of the first request for a key -- errors included -- and
  replays it for ~24 h. An item whose earlier attempt ended in a *definitive* Stripe
  error (4xx other than 409/429: nothing was created) would get that error back forever,
  so it moves to the next generation (a fresh key). An item whose response was lost
  (connection error, timeout, 5xx) keeps its generation: the payout may exist.

Every payout also carries the reference and a tag of the run identity in its metadata
(:func:`RunIdentity.stamp`), so a retry after Stripe forgot the keys still finds what
was paid by listing payouts (:mod:`airflow_provider_stripe.payouts.reconcile`).

Why the run's *logical date* and not its run id: it names the business period. If a run
is deleted and re-triggered for the same logical date, the keys and tags are the same
and nothing is paid twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_stripe.errors import StripeRequestError

REFERENCE_METADATA_KEY = "airflow_payout_ref"
"""Payout metadata key holding the item's reference."""

RUN_METADATA_KEY = "airflow_payout_run"
"""Payout metadata key holding :attr:`RunIdentity.tag`."""

RESERVED_METADATA_KEYS = (REFERENCE_METADATA_KEY, RUN_METADATA_KEY)

WINDOW_SLACK = timedelta(minutes=10)
"""Listing starts this long before the run's earliest known time (clock skew between hosts)."""

_KEY_PREFIX = "airflow-payout-"


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":"), default=str).encode()).hexdigest()


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RunIdentity:
    """What makes a payout "the same" across task retries, and different in the next run.

    :param dag_id: the DAG.
    :param run: the logical date (ISO, UTC) when the run has one, else its run id.
    :param task_id: the task.
    :param map_index: the mapped task's index (-1 when not mapped).
    :param try_number: the current try (1 for the first); only used to pick a fresh key
        generation when no task state store remembers one.
    :param earliest: the earliest moment a payout of this run can have been created;
        the start of the window a retry lists payouts in.
    """

    dag_id: str
    run: str
    task_id: str
    map_index: int
    try_number: int
    earliest: datetime

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> RunIdentity:
        """Read the identity from an Airflow task context."""
        ti = context["ti"]
        dag_run = context.get("dag_run")
        logical_date = _utc(context.get("logical_date") or getattr(dag_run, "logical_date", None))
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
        if logical_date is None and not run_id:
            raise ValueError("the task context has neither a logical date nor a run id; cannot derive payout keys")
        run = logical_date.astimezone(timezone.utc).isoformat() if logical_date else str(run_id)
        map_index = getattr(ti, "map_index", -1)
        # A payout of this run cannot predate the run: its logical date (fixed for the
        # run's life) or run_after (fixed too). start_date/queued_at move when a task is
        # cleared, so they only count when earlier.
        times = [
            t
            for t in (
                logical_date,
                _utc(getattr(dag_run, "run_after", None)),
                _utc(getattr(dag_run, "start_date", None)),
                _utc(getattr(dag_run, "queued_at", None)),
                datetime.now(timezone.utc),
            )
            if t is not None
        ]
        return cls(
            dag_id=str(getattr(ti, "dag_id", None) or context["dag"].dag_id),
            run=run,
            task_id=str(ti.task_id),
            map_index=int(map_index if map_index is not None else -1),
            try_number=max(int(getattr(ti, "try_number", 1) or 1), 1),
            earliest=min(times),
        )

    @property
    def tag(self) -> str:
        """A short stable tag of (DAG, run, task, map index), stored in payout metadata."""
        return _digest("run", self.dag_id, self.run, self.task_id, self.map_index)[:32]

    def idempotency_key(self, reference: str, generation: int) -> str:
        """The ``Idempotency-Key`` of one item's payout at one generation. Never log it."""
        return _KEY_PREFIX + _digest(self.dag_id, self.run, self.task_id, self.map_index, reference, generation)

    def stamp(self, reference: str) -> dict[str, str]:
        """The metadata every payout of this run carries, to be found again by listing."""
        return {REFERENCE_METADATA_KEY: reference, RUN_METADATA_KEY: self.tag}

    def window_start(self, first_attempt: datetime | None = None) -> int:
        """Unix time from which a retry lists payouts: the run's earliest time, minus slack."""
        start = min(t for t in (self.earliest, first_attempt) if t is not None)
        return int((start - WINDOW_SLACK).timestamp())

    def describe(self) -> str:
        """Human form for logs: ``dag/run/task[map]`` (contains no key)."""
        suffix = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}/{self.run}/{self.task_id}{suffix}"


def allows_fresh_key(error: StripeRequestError) -> bool:
    """Whether the item may be retried under a fresh key: Stripe refused it and created nothing.

    A definitive client error (4xx other than 409/429) qualifies, except
    ``idempotency_error``: that says the key was already used with *other* parameters,
    so a payout may exist under it and a fresh key could pay twice.
    """
    return error.is_definitive and error.error_type != "idempotency_error"


def was_replayed(answer: Any) -> bool:
    """Whether Stripe answered from its idempotency store (``Idempotent-Replayed: true``).

    ``answer`` is a ``stripe.StripeError`` or a response (``obj.last_response``); both
    carry the HTTP headers.
    """
    headers = getattr(answer, "headers", None) or {}
    for name, value in dict(headers).items():
        if str(name).lower() == "idempotent-replayed":
            return str(value).lower() == "true"
    return False


def next_generation(current: int, *, try_number: int, remembered: bool) -> int:
    """The generation to use after ``current`` proved to hold a definitive error.

    With a task state store (``remembered``) the new generation is written down before it
    is used, so ``current + 1`` is enough. Without one, a later try cannot know which
    generation an earlier try moved to; it starts again at the generation 0 key, learns
    from Stripe's replayed error that it is spent, and jumps to its own try number, a
    generation no earlier try can have moved to. Generations in between were never sent.
    """
    return current + 1 if remembered else max(current + 1, try_number)
