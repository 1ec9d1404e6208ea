"""Idempotency keys of every money-moving request, and when a retry may take a fresh one.

Every key is derived from the task instance's *run identity* (DAG, logical date -- or run
id when the run has none --, task, map index), a ``scope`` (what kind of request), a
``reference`` (which request of the task: a payout's reference, a charge id, ...) and a
*generation*:

* a retry of the same task instance derives the same key, so Stripe replays what the
  first request did instead of moving money again, even if its response was lost;
* the next run has another identity, hence other keys;
* Stripe saves the result of the first request for a key -- errors included -- and
  replays it for ~24 h. A request whose earlier attempt ended in a *definitive* Stripe
  error (:func:`allows_fresh_key`: nothing was created) would get that error back
  forever, so it moves to the next generation (a fresh key). A request whose response
  was lost (connection error, timeout, 5xx, 409, 429) keeps its generation: the money
  may have moved.

Which generation is current is kept in Airflow's task state store when there is one
(:class:`RequestKeys` for single requests; the payout batch keeps its own per-item
progress). Without one, a later try learns it from Stripe's own answers
(:func:`was_replayed`): a single request walks generation by generation
(:meth:`RequestKeys.advance`); the payout batch jumps to a generation no earlier try can
have used (:func:`next_generation`) and relies on listing payouts to find earlier ones.

Why the run's *logical date* and not its run id: it names the business period. If a run
is deleted and re-triggered for the same logical date, the keys are the same and nothing
is paid twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_stripe.errors import StripeInputError, StripeRequestError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+; the provider supports 3.10

KEY_PREFIX = "airflow-"
"""Every derived key starts with ``airflow-<scope>-`` (then 64 hex digits)."""

MAX_KEY_HOPS = 3
"""How many times one try moves on to a fresh key after *replayed* refusals (a single request
may walk further: up to its try number, one generation per earlier try)."""

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

    :param dag_id: the DAG.
    :param run: the logical date (ISO, UTC) when the run has one, else its run id.
    :param task_id: the task.
    :param map_index: the mapped task's index (-1 when not mapped).
    :param try_number: the current try (1 for the first); only used to pick a fresh key
        generation when no task state store remembers one.
    :param earliest: the earliest moment anything this run sent can have been created
        (e.g. the start of the window a retry lists payouts in).
    """

    dag_id: str
    run: str
    task_id: str
    map_index: int
    try_number: int
    earliest: datetime

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Self:
        """Read the identity from an Airflow task context."""
        ti = context["ti"]
        dag_run = context.get("dag_run")
        logical_date = _utc(context.get("logical_date") or getattr(dag_run, "logical_date", None))
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
        if logical_date is None and not run_id:
            raise ValueError("the task context has neither a logical date nor a run id; cannot derive Stripe keys")
        run = logical_date.astimezone(timezone.utc).isoformat() if logical_date else str(run_id)
        map_index = getattr(ti, "map_index", -1)
        # Nothing of this run can predate the run: its logical date (fixed for the run's
        # life) or run_after (fixed too). start_date/queued_at move when a task is
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
        """A short stable tag of (DAG, run, task, map index), e.g. for metadata."""
        return digest("run", self.dag_id, self.run, self.task_id, self.map_index)[:32]

    def idempotency_key(self, scope: str, reference: str, generation: int = 0) -> str:
        """The ``Idempotency-Key`` of one request of this task instance. Never log it.

        :param scope: the kind of request (``payout``, ``charges.create``, ...), readable
            in the key's prefix.
        :param reference: tells apart the requests of one scope made by one task.
        :param generation: 0, then higher after definitive refusals (a fresh key).
        """
        return f"{KEY_PREFIX}{scope}-" + digest(
            self.dag_id, self.run, self.task_id, self.map_index, reference, generation
        )

    def describe(self) -> str:
        """Human form for logs: ``dag/run/task[map]`` (contains no key)."""
        suffix = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}/{self.run}/{self.task_id}{suffix}"


def allows_fresh_key(error: StripeRequestError) -> bool:
    """Whether the request may be retried under a fresh key: Stripe refused it and created nothing.

    The single place that decides. A definitive client error qualifies
    (:attr:`StripeRequestError.is_definitive`: 4xx other than 409/429, and not
    ``idempotency_error``, which says the key was already used with *other* parameters,
    so something may exist under it and a fresh key could move money twice).
    """
    return error.is_definitive


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


def explicit_key_function(key: str) -> KeyFunction:
    """A user-given key for generation 0; ``<key>-retry<n>`` for later (fresh) generations."""
    if len(key) > EXPLICIT_KEY_MAX:
        raise StripeInputError(
            f"has {len(key)} characters; use at most {EXPLICIT_KEY_MAX} (Stripe allows 255 and a suffix is added "
            "when a refused request is retried under a fresh key)",
            field="idempotency_key",
        )
    return lambda _reference, generation: key if generation == 0 else f"{key}-retry{generation}"


def without_key(error: StripeRequestError, key: str) -> StripeRequestError:
    """The same error with the idempotency key (which Stripe quotes in some messages) masked."""
    if key not in error.stripe_message:
        return error
    return StripeRequestError(
        operation=error.operation,
        error_type=error.error_type,
        code=error.code,
        message=error.stripe_message.replace(key, "<idempotency key>"),
        request_id=error.request_id,
        http_status=error.http_status,
        decline_code=error.decline_code,
        param=error.param,
    )


GENERATION_STATE_PREFIX = "stripe_idempotency_generation:"
"""Task state store key of a single request's current generation: ``<prefix><scope>``."""


@dataclass(frozen=True)
class RequestKeys:
    """The keys of one single (non-batch) request of a task instance, generation by generation.

    The current generation lives in the task state store (``context["task_state_store"]``,
    Airflow 3.3+) under ``stripe_idempotency_generation:<scope>``; without a store every
    try starts at 0. Generations are used strictly one after another, each only after the
    previous one was refused definitively, so a try without a store can walk them: every
    key an earlier try used is answered from Stripe's store (a refusal leads on to the next
    key, a success is returned instead of repeated), and the first unused key executes the
    request.

    :param identity: the task instance's run identity.
    :param scope: the request kind (e.g. ``charges.create``): key prefix and store key.
    :param reference: tells this request apart (e.g. the charge id), or ``""``.
    :param store: the task state store (``get(key, default)`` / ``set(key, value)``), or None.
    :param explicit: the user's key function (:func:`explicit_key_function`), if any.
    """

    identity: RunIdentity
    scope: str
    reference: str = ""
    store: Any | None = None
    explicit: KeyFunction | None = None

    @property
    def state_key(self) -> str:
        return GENERATION_STATE_PREFIX + self.scope

    def current(self) -> int:
        """The generation to start this try with: the stored one, else 0."""
        if self.store is None:
            return 0
        value = self.store.get(self.state_key, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    def key(self, generation: int) -> str:
        """The idempotency key at ``generation``."""
        if self.explicit is not None:
            return self.explicit(self.reference, generation)
        return self.identity.idempotency_key(self.scope, self.reference, generation)

    def advance(self, generation: int) -> int:
        """Move past a definitive refusal at ``generation``: the next one, stored before it is used.

        Always ``generation + 1``, store or not (unlike the payout batch's
        :func:`next_generation`): a single request has no listing to fall back on, so a try
        without a store must find an earlier try's success by walking, not skip past it.
        """
        fresh = generation + 1
        if self.store is not None:
            self.store.set(self.state_key, fresh)
        return fresh
