"""The idempotent-request engine: every money-moving request of the provider goes through it.

Charges, captures, refunds, payout cancellations (one request per task) and payouts (one
request per item of a batch; a single payout is a batch of one) all use
:class:`IdempotentRequests`. It owns four things:

**Keys.** A key is derived from *what the request pays*, then a *generation*:

* a payout whose reference names one payment (an explicit reference under cross-run
  protection, or any reference with ``cross_run_protection=True``) gets a *reference key*
  (:meth:`ReferenceScope.key`): the Stripe account, the scope name (``account`` by
  default, an explicit ``reference_scope``, or ``dag:<dag id>`` for content-hash
  references), the reference, the generation. Every run and every DAG that pays the
  reference in that scope sends the *same* key, so Stripe itself refuses the second
  payment at the moment of creation: ``409 idempotency_key_in_use`` while the first
  request is in flight, ``400 idempotency_error`` (other parameters: the run is in the
  metadata) once it is done. That is the rule that makes "never pays twice" hold for
  concurrent runs; :mod:`airflow_provider_stripe.payout_batch.recovery` lists payouts for
  what is older than the keys' ~24 h (:data:`KEY_LIFETIME`).
* every other request gets a *task key* (:meth:`RunIdentity.idempotency_key`): DAG,
  logical date -- or run id when the run has none --, task, map index, a scope (what kind
  of request) and a reference (which request of the task). A retry of the same task
  instance derives the same key, so Stripe replays what the first request did instead of
  moving money again, even if its response was lost; the next run has other keys. A
  user-given key replaces the derived one (:func:`explicit_key_function`).

**The generation rule.** Stripe saves the result of the first request for a key --
errors included -- and replays it for ~24 h. A request whose earlier attempt ended in a
*definitive* Stripe error (:func:`allows_fresh_key`: nothing was created) would get that
error back forever, so it moves to the next generation, a fresh key. A request whose
response was lost (connection error, timeout, 5xx, 409, 429) keeps its generation: the
money may have moved. Generations are always taken one after the other (0, 1, 2, ...),
never skipped, so every try and every run meets the keys the others used.

**The state-store layout.** Which generation is current, and what became of it, is kept
in Airflow's task state store (``context["task_state_store"]``, Airflow 3.3+) by a
:class:`Ledger`, written *before* a new generation is used. A task with one request per
scope keeps just the generation to use next (:class:`SingleRequestLedger`, key
``stripe_idempotency_generation:<scope>``); a batch keeps every item's generation and
outcome in chunks (:class:`BatchLedger`, keys ``stripe_payout_batch`` and
``stripe_payout_batch/<i>``). On Airflow < 3.3 there is no store: the ledgers remember
nothing and every try starts at generation 0.

**The replay walk.** Without a store, a later try learns from Stripe's own answers
(:func:`was_replayed`): the generation 0 key replays an earlier try's refusal, so the
request moves on to the next generation at once, within the same try (at most
:data:`MAX_KEY_HOPS` hops, or one per earlier try), each earlier key answered from
Stripe's store (a refusal leads on, a success is returned instead of repeated).

How callers use it: :meth:`IdempotentRequests.request` sends one request to its end
(the operators' ``send_idempotent``). A concurrent caller (the payout batch) splits the
same steps: :meth:`~IdempotentRequests.plan` and :meth:`~IdempotentRequests.settle` in
the calling thread, :meth:`~IdempotentRequests.send` in worker threads.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from airflow_provider_stripe.compat import read_field
from airflow_provider_stripe.errors import StripeInputError, StripeRequestError, from_stripe_error

if TYPE_CHECKING:
    import logging

    from typing_extensions import Self  # typing.Self is 3.11+; the provider supports 3.10

T = TypeVar("T")

KEY_PREFIX = "airflow-"
"""Every derived key starts with ``airflow-<scope>-`` (then 64 hex digits)."""

MAX_KEY_HOPS = 3
"""How many times one try moves on to a fresh key after *replayed* refusals (or more: one
generation per earlier try)."""

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

    :param dag_id: the DAG.
    :param run: the logical date (ISO, UTC) when the run has one, else its run id.
    :param task_id: the task.
    :param map_index: the mapped task's index (-1 when not mapped).
    :param try_number: the current try (1 for the first); only used to pick a fresh key
        generation when no task state store remembers one.
    :param earliest: the earliest moment anything this run sent can have been created
        (e.g. the start of the window a retry lists payouts in).
    :param run_id: the Airflow run id (what users see; ``run`` when not given). It names
        the run in payout metadata, so a later run can say which run paid a reference.
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
            run_id=str(run_id or run),
        )

    @property
    def dag_run_id(self) -> str:
        """The Airflow run id (``run`` when the identity was built without one)."""
        return self.run_id or self.run

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


REFERENCE_METADATA_KEY = "airflow_payout_ref"
"""Payout metadata key holding the item's reference."""

RUN_METADATA_KEY = "airflow_payout_run"
"""Payout metadata key holding :attr:`RunIdentity.tag` (which task instance sent it)."""

SCOPE_METADATA_KEY = "airflow_payout_scope"
"""Payout metadata key holding the :class:`ReferenceScope` name of a protected reference."""

DAG_METADATA_KEY = "airflow_payout_dag"
"""Payout metadata key holding the DAG id (what ``already_paid_by_run`` names, with the run)."""

DAG_RUN_METADATA_KEY = "airflow_payout_dag_run"
"""Payout metadata key holding the Airflow run id (what ``already_paid_by_run`` names)."""

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
"""Payout keys are ``airflow-payout-<sha256>``."""

ACCOUNT_SCOPE = "account"
"""The default :class:`ReferenceScope` name: an explicit reference names one payment of the account."""


@dataclass(frozen=True)
class ReferenceScope:
    """Where a reference names one payment, whichever run or DAG pays it (see the module docstring).

    :param name: ``account`` (default for explicit references), a user-given
        ``reference_scope``, or ``dag:<dag id>`` (content-hash references).
    :param account: the connected account paying (``Stripe-Account``), ``None`` for the platform.
    """

    name: str
    account: str | None = None

    def key(self, reference: str, generation: int) -> str:
        """The reference key of ``reference`` at ``generation``: the same for every run. Never log it."""
        parts = ("reference", self.account or "", self.name, reference, generation)
        return f"{KEY_PREFIX}{PAYOUT_SCOPE}-" + digest(*parts)


class PayoutIdentity(RunIdentity):
    """A :class:`RunIdentity` with what payouts add: their task key, metadata stamp and listing window.

    Every payout carries its reference and the run's tag in its metadata, so a retry after
    Stripe forgot the keys (~24 h) still finds what was paid by listing payouts
    (:mod:`airflow_provider_stripe.payout_batch.recovery`).
    """

    def payout_key(self, reference: str, generation: int) -> str:
        """The task key of an unprotected item's payout at one generation. Never log it."""
        return self.idempotency_key(PAYOUT_SCOPE, reference, generation)

    def stamp(self, reference: str, scope: ReferenceScope | None = None) -> dict[str, str]:
        """The metadata every payout of this run carries, to be found again by listing.

        The run tag finds this task instance's own payouts (a retry); the scope name marks a
        protected reference, so any other run in the scope refuses it; the DAG id and run id
        say who paid. Stripe allows 500 characters per value; Airflow ids are at most 250.
        Because the metadata differs between task instances, a reference key sent by
        another run is answered with Stripe's ``idempotency_error``, never replayed as ours.
        """
        stamp = {REFERENCE_METADATA_KEY: reference, RUN_METADATA_KEY: self.tag}
        if scope is not None:
            stamp[SCOPE_METADATA_KEY] = scope.name
        stamp |= {DAG_METADATA_KEY: self.dag_id, DAG_RUN_METADATA_KEY: self.dag_run_id}
        return stamp

    def window_start(self, first_attempt: datetime | None = None) -> int:
        """Unix time from which a retry lists payouts: the run's earliest time, minus slack."""
        start = min(t for t in (self.earliest, first_attempt) if t is not None)
        return int((start - WINDOW_SLACK).timestamp())


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


# -- the state-store layout ------------------------------------------------------------------

Code = Literal["sent", "ok", "refused", "unknown"]
"""``sent``: a request with this generation may have been sent; ``ok``: the object exists;
``refused``: Stripe refused it definitively (nothing created); ``unknown``: the answer was
lost or transient (the object may exist)."""


@dataclass(frozen=True)
class ItemState:
    """What a ledger remembers about one request: its generation, outcome and object id.

    ``made_by``: the try of the run that created the object (``ok`` only; ``None`` when not known).
    """

    generation: int
    code: Code
    object_id: str | None = None
    made_by: int | None = None


class Ledger(Protocol):
    """Where a request's generation and outcome live between tries (see the module docstring)."""

    @property
    def remembered(self) -> bool:
        """True when the ledger survives the process (a task state store is in use)."""

    def get(self, reference: str) -> ItemState | None:
        """The remembered state of a request, if any."""

    def record(
        self, reference: str, generation: int, code: Code, object_id: str | None = None, made_by: int | None = None
    ) -> None:
        """Remember a request's state; a ``sent`` of a new generation is written at once."""


GENERATION_STATE_PREFIX = "stripe_idempotency_generation:"
"""Task state store key of a single request's generation: ``<prefix><scope>``."""


class SingleRequestLedger:
    """The ledger of a task that sends one request per scope (charges, captures, refunds, cancels).

    It keeps only the generation the next attempt uses, an ``int`` under
    ``stripe_idempotency_generation:<scope>`` (nothing while it is 0): the outcome of that
    generation is learnt from Stripe by sending its key again. A refusal writes the next
    generation at once, so clearing the task sends under a fresh key. The scope names the
    request, so ``reference`` only shapes the key, not the store.
    """

    def __init__(self, store: Any | None, scope: str) -> None:
        self.store = store
        self.state_key = GENERATION_STATE_PREFIX + scope

    @property
    def remembered(self) -> bool:
        return self.store is not None

    def get(self, reference: str) -> ItemState | None:
        if self.store is None:
            return None
        value = self.store.get(self.state_key, 0)
        return ItemState(value, "sent") if isinstance(value, int) and value > 0 else None

    def record(
        self, reference: str, generation: int, code: Code, object_id: str | None = None, made_by: int | None = None
    ) -> None:
        if self.store is None:
            return
        if code == "refused":
            self.store.set(self.state_key, generation + 1)
        elif code == "sent" and generation > 0:
            self.store.set(self.state_key, generation)


BATCH_STATE_KEY = "stripe_payout_batch"
BATCH_LOG_VALUE_ITEMS = 200
"""Entries per log value: keeps each value far below the task state store's 64 KB per-value policy."""
BATCH_FORMAT_VERSION = 2
MAX_LOG_VALUES = 1_000_000
"""A bound on the log values a load reads (a batch writes a few per minute)."""

_CODES: dict[str, Code] = {"s": "sent", "ok": "ok", "r": "refused", "u": "unknown"}
_SHORT: dict[Code, str] = {v: k for k, v in _CODES.items()}


def _encode(generation: int, code: Code, object_id: str | None, made_by: int | None) -> Any:
    if generation == 0 and code == "ok" and object_id and made_by == 1:
        return object_id
    if code == "ok" and made_by is not None:
        return [generation, _SHORT[code], object_id, made_by]
    return [generation, _SHORT[code]] + ([object_id] if object_id else [])


def _decode(entry: Any) -> ItemState | None:
    if entry is None:
        return None
    if isinstance(entry, str):
        return ItemState(0, "ok", entry, made_by=1)
    made_by = int(entry[3]) if len(entry) > 3 and entry[3] is not None else None
    return ItemState(int(entry[0]), _CODES[entry[1]], entry[2] if len(entry) > 2 else None, made_by)


def _is_created(entry: Any) -> bool:
    state = _decode(entry)
    return state is not None and state.code == "ok"


class BatchLedger:
    """A batch's per-item generations and outcomes; durable when given a task state store.

    A retry resumes where the last attempt stopped: created items are not requested again,
    items whose response was lost reuse their key, and items that Stripe refused move to a
    fresh key. A new generation is written (and flushed) *before* its first request is
    sent, so after a crash a retry never forgets which key may have paid.

    Layout (compact JSON, a few bytes per item): ``stripe_payout_batch`` holds
    ``{"v": 2, "first_attempt": iso, "tries": {"<try>": iso}}`` (``tries``: when each try
    of the run started, written before the try sends anything; it tells which try created a
    payout found by listing). The entries are an append-only log: each flush writes the
    entries changed since the last one as ``stripe_payout_batch/<n>`` (n = 0, 1, ...; at
    most :data:`BATCH_LOG_VALUE_ITEMS` each, far below the store's 64 KB per-value policy),
    and a load replays them in order, later entries replacing earlier ones. So a flush costs
    what changed, not the batch's size. An entry ``{reference: entry}`` is just the object
    id for the common case (created by try 1 with the first key), else ``[generation, code,
    object_id?]`` or, for a created object, ``[generation, "ok", object_id, made_by_try]``.
    Outcomes are flushed at most every ``flush_interval`` seconds (outcomes lost in a crash
    are re-learnt from Stripe: the key is the same, or the payout is found by listing).

    Without a store (Airflow < 3.3, or an operator run outside a task), it remembers
    nothing (each item is planned once per try, so memory would not help) and ``tries``
    holds only the current try.
    """

    def __init__(self, store: Any | None, *, flush_interval: float = 2.0) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self._entries: dict[str, Any] = {}
        self._dirty: dict[str, Any] = {}
        self._next_value = 0
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self.first_attempt: datetime | None = None
        self.resumed = False
        self.tries: dict[int, datetime] = {}
        """When each try of the run that ran this batch started (all of them with a store)."""

    @property
    def remembered(self) -> bool:
        return self.store is not None

    def load(self, item_count: int, try_number: int = 1) -> None:
        """Read what earlier tries stored, or write the header of a first try; note this try's start.

        Called before any request of the try, so a payout created by this try is never
        older than its recorded start. ``item_count`` is the batch's size (for the log).
        """
        now = datetime.now(timezone.utc)
        if self.store is None:
            self.first_attempt = now
            self.tries = {try_number: now}
            return
        meta = self.store.get(BATCH_STATE_KEY, None)
        if isinstance(meta, dict) and meta.get("v") == BATCH_FORMAT_VERSION:
            self.first_attempt = datetime.fromisoformat(str(meta["first_attempt"]))
            for n in range(MAX_LOG_VALUES):
                value = self.store.get(f"{BATCH_STATE_KEY}/{n}", None)
                if not isinstance(value, dict):
                    break
                self._entries.update(value)
                self._next_value = n + 1
            self.resumed = True
            self.tries = {int(n): datetime.fromisoformat(str(t)) for n, t in meta["tries"].items()}
            # A try number seen again (a try that died before Airflow counted it) keeps its first start.
            self.tries.setdefault(try_number, now)
            self.store.set(BATCH_STATE_KEY, {**meta, "tries": self._tries_json()})
            return
        self.first_attempt = now
        self.tries = {try_number: now}
        header = {"v": BATCH_FORMAT_VERSION, "first_attempt": now.isoformat(), "tries": self._tries_json()}
        self.store.set(BATCH_STATE_KEY, header)

    def _tries_json(self) -> dict[str, str]:
        return {str(n): t.isoformat() for n, t in sorted(self.tries.items())}

    def try_that_created(self, created: int, current_try: int) -> int | None:
        """Which earlier try of the run created an object at Unix time ``created``, or ``None`` if unknown.

        The latest try that started no later than ``created`` (Stripe's times are whole
        seconds, hence the second of slack). Exact with a store, which records every try's
        start before it sends anything. Without one only the current try is known: try 2
        can only have followed try 1; later tries cannot tell.
        """
        if self.store is None:
            return 1 if current_try == 2 else None
        started = [n for n, t in self.tries.items() if n < current_try and t.timestamp() <= created + 1]
        return max(started) if started else None

    def get(self, reference: str) -> ItemState | None:
        return _decode(self._entries.get(reference))

    def created_count(self) -> int:
        """How many items are remembered as created."""
        return sum(1 for entry in list(self._entries.values()) if _is_created(entry))

    def record(
        self, reference: str, generation: int, code: Code, object_id: str | None = None, made_by: int | None = None
    ) -> None:
        if self.store is None:
            return
        entry = _encode(generation, code, object_id, made_by)
        with self._lock:
            previous = _decode(self._entries.get(reference))
            if self._entries.get(reference) == entry:
                return
            self._entries[reference] = entry
            self._dirty[reference] = entry
            if code == "sent" and generation > 0 and (previous is None or previous.generation != generation):
                # Write-ahead: the store must know this generation before Stripe can see it.
                self._flush()

    def flush(self, *, force: bool = False) -> None:
        """Append the changed entries, at most every ``flush_interval`` seconds unless ``force``."""
        with self._lock:
            if self._dirty and (force or time.monotonic() - self._last_flush >= self.flush_interval):
                self._flush()

    def _flush(self) -> None:
        """Write the changed entries as the next log value(s); the caller holds the lock."""
        if self.store is not None:
            pending = list(self._dirty.items())
            for at in range(0, len(pending), BATCH_LOG_VALUE_ITEMS):
                self.store.set(f"{BATCH_STATE_KEY}/{self._next_value}", dict(pending[at : at + BATCH_LOG_VALUE_ITEMS]))
                self._next_value += 1
        self._dirty = {}
        self._last_flush = time.monotonic()


# -- the engine --------------------------------------------------------------------------------

Outcome = Literal["created", "existing", "refused", "used_elsewhere", "unknown"]
"""How a request ended: ``created`` by this try; ``existing``: Stripe replayed an earlier
try's success; ``refused`` definitively (nothing done; the next attempt uses a fresh key);
``used_elsewhere``: Stripe says the key was used with other parameters (another run sent
this reference key, or the request changed): something may exist under it, the caller
finds out what (:func:`used_elsewhere`); ``unknown``: the answer was lost or transient,
or another request with the key stayed in flight: the object may exist, the next attempt
reuses the key."""

IN_FLIGHT_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds to wait before sending again while Stripe says another request with the key is in
flight (``409 idempotency_key_in_use``; Stripe runs it to its end): 15.5 s in all."""


def used_elsewhere(error: StripeRequestError) -> bool:
    """Whether Stripe refused the key because it was used with *other* parameters (``400 idempotency_error``)."""
    return error.error_type == "idempotency_error" and error.http_status == 400


def in_flight(error: StripeRequestError) -> bool:
    """Whether another request with the same key is still in flight at Stripe (``409``)."""
    in_use = error.error_type == "idempotency_error" or error.code == "idempotency_key_in_use"
    return error.http_status == 409 and in_use


@dataclass(frozen=True)
class Attempt:
    """One request to send: which reference, under which generation's key.

    :param hops: fresh keys taken within this try after replayed refusals.
    :param sent_before: this generation's key may have been sent by an earlier try.
    :param waits: times this attempt waited for another request with its key in flight;
        :meth:`IdempotentRequests.send` first sleeps ``IN_FLIGHT_WAITS[waits - 1]``.
    """

    reference: str
    generation: int
    hops: int = 0
    sent_before: bool = False
    waits: int = 0


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What one :meth:`IdempotentRequests.send` brought back; ``outcome`` is set by ``settle``.

    :param result: the SDK's answer (e.g. the Stripe object), on success.
    :param error: the Stripe error, the idempotency key masked, on failure.
    :param cause: the SDK exception to chain to ``error`` (``None`` if it quotes the key).
    """

    attempt: Attempt
    key: str
    operation: str
    result: T | None = None
    error: StripeRequestError | None = None
    cause: BaseException | None = None
    replayed: bool = False
    outcome: Outcome | None = None


class IdempotentRequests(Generic[T]):
    """Sends requests of one scope under the provider's key rules (see the module docstring).

    :param identity: the task instance's run identity.
    :param scope: the kind of request (``charges.create``, ``payout``): the derived keys' prefix.
    :param ledger: where generations and outcomes are kept between tries.
    :param key_for: ``(reference, generation) -> key`` (user-given or reference keys);
        default the identity's task key.
    """

    def __init__(
        self,
        *,
        identity: RunIdentity,
        scope: str,
        ledger: Ledger,
        key_for: KeyFunction | None = None,
    ) -> None:
        self.identity = identity
        self.scope = scope
        self.ledger = ledger
        self.key_for = key_for
        # A try may need one hop per earlier try (each may have spent a generation).
        self.max_hops = max(MAX_KEY_HOPS, identity.try_number)
        self.started = int(time.time()) - 1
        """Unix time this try began: a replayed success created before it is an earlier try's."""

    def key(self, reference: str, generation: int) -> str:
        """The idempotency key of ``reference`` at ``generation``. Never log it."""
        if self.key_for is not None:
            return self.key_for(reference, generation)
        return self.identity.idempotency_key(self.scope, reference, generation)

    def current_generation(self, reference: str) -> int:
        """The generation the ledger holds for ``reference`` (0 if none); writes nothing (dry runs)."""
        state = self.ledger.get(reference)
        return state.generation if state is not None else 0

    def plan(self, reference: str) -> Attempt:
        """The first attempt of this try: the remembered generation, or a fresh one after a refusal.

        A reference the ledger knows as created (``ok``) is the caller's to report; sending
        it again is harmless (Stripe replays it) but costs a request.
        """
        state = self.ledger.get(reference)
        if state is None:
            return Attempt(reference, 0)
        if state.code == "refused":
            return self.advance(reference, state.generation, hops=0)
        return Attempt(reference, state.generation, sent_before=True)

    def send(
        self,
        attempt: Attempt,
        call: Callable[[str], T],
        operation: str,
        *,
        key: str | None = None,
        contain: bool = False,
    ) -> Answer[T]:
        """Make one request (any thread): ``call(key)`` sends it under the attempt's key.

        ``key``: the key to use instead of :meth:`key` (a caller choosing keys per item).
        An attempt that waits for a request in flight first sleeps. A Stripe error is
        returned in the answer, not raised. ``contain`` also turns any other exception
        (e.g. a rate-limit wait beyond its bound) into an answer with an unknown outcome,
        for worker threads that must not raise.
        """
        import stripe

        key = key or self.key(attempt.reference, attempt.generation)
        if attempt.waits:
            time.sleep(IN_FLIGHT_WAITS[attempt.waits - 1])
        try:
            result = call(key)
        except stripe.StripeError as exc:
            error = without_key(from_stripe_error(exc, operation), key)
            # Stripe quotes the key in some messages: keep the SDK's error out of the chain then.
            cause = None if key in str(exc) else exc
            return Answer(attempt, key, operation, error=error, cause=cause, replayed=was_replayed(exc))
        except Exception as exc:
            if not contain:
                raise
            return Answer(attempt, key, operation, error=without_key(from_stripe_error(exc, operation), key))
        replayed = was_replayed(getattr(result, "last_response", None))
        return Answer(attempt, key, operation, result=result, replayed=replayed)

    def settle(self, answer: Answer[T], log: logging.Logger | Any) -> Attempt | Answer[T]:
        """Record an answer in the ledger (calling thread); return a follow-up or the final answer.

        A definitive refusal that Stripe *replayed* is an earlier try's (nothing was done
        under that key): the request goes on at once under a fresh key, the returned
        :class:`Attempt`, within :attr:`max_hops`. While another request with the key is in
        flight, the same attempt is returned to be sent again after a wait
        (:data:`IN_FLIGHT_WAITS`): never under another key, since that request may pay.
        Anything else is final: the answer with its :data:`Outcome`.
        """
        attempt = answer.attempt
        reference = attempt.reference
        if answer.error is None:
            # A replay of this try's own request (the SDK retried after a lost answer) is still
            # "created"; a replay of an earlier try's request is "existing".
            earlier = answer.replayed and (
                attempt.sent_before or int(read_field(answer.result, "created") or 0) < self.started
            )
            # An earlier try's object: the caller learns which try from its creation time.
            made_by = None if earlier else self.identity.try_number
            self.ledger.record(reference, attempt.generation, "ok", read_field(answer.result, "id"), made_by)
            return replace(answer, outcome="existing" if earlier else "created")
        error = answer.error
        if in_flight(error) and attempt.waits < len(IN_FLIGHT_WAITS):
            log.info(
                "%s: another request with this idempotency key is in flight at Stripe; waiting %.1f s, then "
                "asking again under the same key",
                answer.operation,
                IN_FLIGHT_WAITS[attempt.waits],
            )
            return replace(attempt, waits=attempt.waits + 1)
        if not allows_fresh_key(error):
            self.ledger.record(reference, attempt.generation, "unknown")
            return replace(answer, outcome="used_elsewhere" if used_elsewhere(error) else "unknown")
        if answer.replayed and attempt.hops < self.max_hops:
            log.info(
                "%s: Stripe replayed a refusal an earlier try saved under its idempotency key (%s); nothing was "
                "done under it, so it is sent again under a fresh key",
                answer.operation,
                error.code or error.error_type or error.http_status,
            )
            return self.advance(reference, attempt.generation, hops=attempt.hops + 1)
        self.ledger.record(reference, attempt.generation, "refused")
        return replace(answer, outcome="refused")

    def request(self, reference: str, call: Callable[[str], T], operation: str, log: logging.Logger | Any) -> Answer[T]:
        """Send one request to its end in the calling thread: plan, send, settle, follow fresh keys."""
        attempt = self.plan(reference)
        while True:
            settled = self.settle(self.send(attempt, call, operation), log)
            if isinstance(settled, Answer):
                return settled
            attempt = settled

    def advance(self, reference: str, generation: int, *, hops: int) -> Attempt:
        """Move past ``generation``, proven to hold nothing paid: the next one, recorded before use."""
        self.ledger.record(reference, generation + 1, "sent")
        return Attempt(reference, generation + 1, hops=hops)
