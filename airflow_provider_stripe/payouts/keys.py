"""Idempotency keys: what makes a Stripe request "the same" across tries, runs and DAGs.

A payout whose reference names one payment gets a *reference key* (:meth:`ReferenceScope.key`),
the same for every run and DAG in its scope, so Stripe itself refuses a second payment; every
other request a *task key* (:meth:`RunIdentity.idempotency_key`), the same across retries of one
task instance. A user-given key replaces either (:func:`explicit_key_function`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.errors import StripeInputError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; the provider supports 3.10


KEY_PREFIX = "airflow-"
KEY_LIFETIME = timedelta(hours=24)
"""How long Stripe keeps an idempotency key's result: older payments are found by listing."""

EXPLICIT_KEY_MAX = 240
"""Longest user-given key: Stripe allows 255 and ``-retry<n>`` is added for fresh generations."""

KeyFunction = Callable[[str, int], str]
"""``(reference, generation) -> idempotency key``."""


def digest(*parts: Any) -> str:
    """SHA-256 (hex) of ``parts`` as compact JSON: short, reveals nothing, no odd characters."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":"), default=str).encode()).hexdigest()


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RunIdentity:
    """What makes a request "the same" across task retries, and different in the next run.

    :param run: the logical date (ISO, UTC) when the run has one, else its run id.
    :param try_number: the current try; picks a fresh generation when no task state store remembers one.
    :param earliest: the earliest moment anything this run sent can have been created.
    :param run_id: the Airflow run id, naming the run in payout metadata (``run`` when empty).
    """

    dag_id: str
    run: str
    task_id: str
    map_index: int
    try_number: int
    earliest: datetime
    run_id: str = ""

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Self:
        ti = context["ti"]
        dag_run = context.get("dag_run")
        logical_date = _utc(context.get("logical_date") or getattr(dag_run, "logical_date", None))
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
        if logical_date is None and not run_id:
            raise ValueError("the task context has neither a logical date nor a run id; cannot derive Stripe keys")
        run = logical_date.astimezone(timezone.utc).isoformat() if logical_date else str(run_id)
        map_index = getattr(ti, "map_index", -1)
        # Nothing of this run can predate its logical date or run_after (both fixed for the run's life);
        # start_date/queued_at move when a task is cleared, so they only count when earlier.
        run_times = [_utc(getattr(dag_run, name, None)) for name in ("run_after", "start_date", "queued_at")]
        times = [t for t in (logical_date, *run_times, datetime.now(timezone.utc)) if t is not None]
        return cls(
            dag_id=str(getattr(ti, "dag_id", None) or context["dag"].dag_id),
            run=run,
            task_id=str(ti.task_id),
            map_index=int(map_index if map_index is not None else -1),
            try_number=max(int(getattr(ti, "try_number", 1) or 1), 1),
            earliest=min(times),
            run_id=str(run_id or run),
        )

    @property
    def tag(self) -> str:
        """A short stable tag of (DAG, run, task, map index), e.g. for metadata."""
        return digest("run", self.dag_id, self.run, self.task_id, self.map_index)[:32]

    def idempotency_key(self, scope: str, reference: str, generation: int = 0) -> str:
        """The ``Idempotency-Key`` of one request of this task instance (never log it)."""
        return f"{KEY_PREFIX}{scope}-" + digest(
            self.dag_id, self.run, self.task_id, self.map_index, reference, generation
        )

    def describe(self) -> str:
        """Human form for logs: ``dag/run/task[map]`` (contains no key)."""
        suffix = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}/{self.run}/{self.task_id}{suffix}"


# The metadata every payout carries (:meth:`PayoutIdentity.stamp`): reference, run tag, scope, DAG and run ids.
REFERENCE_METADATA_KEY = "airflow_payout_ref"
RUN_METADATA_KEY = "airflow_payout_run"
SCOPE_METADATA_KEY = "airflow_payout_scope"
DAG_METADATA_KEY = "airflow_payout_dag"
DAG_RUN_METADATA_KEY = "airflow_payout_dag_run"
RESERVED_METADATA_KEYS = (
    REFERENCE_METADATA_KEY,
    RUN_METADATA_KEY,
    SCOPE_METADATA_KEY,
    DAG_METADATA_KEY,
    DAG_RUN_METADATA_KEY,
)

WINDOW_SLACK = timedelta(minutes=10)
"""Listing starts this long before the run's earliest known time (clock skew between hosts)."""

PAYOUT_SCOPE = "payout"

ACCOUNT_SCOPE = "account"
"""The default :class:`ReferenceScope` name: an explicit reference names one payment of the account."""


@dataclass(frozen=True)
class ReferenceScope:
    """Where a reference names one payment, whichever run or DAG pays it: ``name`` (``account``, a
    ``reference_scope`` or ``dag:<dag id>``) on ``account`` (``None``: the platform)."""

    name: str
    account: str | None = None

    def key(self, reference: str, generation: int) -> str:
        """The reference key of ``reference`` at ``generation``: the same for every run. Never log it."""
        parts = ("reference", self.account or "", self.name, reference, generation)
        return f"{KEY_PREFIX}{PAYOUT_SCOPE}-" + digest(*parts)


class PayoutIdentity(RunIdentity):
    """A :class:`RunIdentity` with what payouts add: their task key, metadata stamp and listing window."""

    def payout_key(self, reference: str, generation: int) -> str:
        """The task key of an unprotected item's payout at one generation. Never log it."""
        return self.idempotency_key(PAYOUT_SCOPE, reference, generation)

    def stamp(self, reference: str, scope: ReferenceScope | None = None) -> dict[str, str]:
        """The metadata every payout carries, to be found by listing; it differs per task instance, so a
        reference key sent by another run is answered ``idempotency_error``, never replayed as ours."""
        stamp = {REFERENCE_METADATA_KEY: reference, RUN_METADATA_KEY: self.tag}
        if scope is not None:
            stamp[SCOPE_METADATA_KEY] = scope.name
        stamp |= {DAG_METADATA_KEY: self.dag_id, DAG_RUN_METADATA_KEY: self.run_id or self.run}
        return stamp

    def window_start(self, first_attempt: datetime | None = None) -> int:
        """Unix time from which a retry lists payouts: the run's earliest time, minus slack."""
        start = min(t for t in (self.earliest, first_attempt) if t is not None)
        return int((start - WINDOW_SLACK).timestamp())


def explicit_key_function(key: str) -> KeyFunction:
    """A user-given key for generation 0; ``<key>-retry<n>`` for later (fresh) generations."""
    if len(key) > EXPLICIT_KEY_MAX:
        raise StripeInputError(
            f"has {len(key)} characters; use at most {EXPLICIT_KEY_MAX} (Stripe allows 255 and a suffix is added "
            "when a refused request is retried under a fresh key)",
            field="idempotency_key",
        )
    return lambda _reference, generation: key if generation == 0 else f"{key}-retry{generation}"
