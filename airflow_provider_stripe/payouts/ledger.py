"""Where each request's key generation and outcome live between tries, in the task state store
(Airflow 3.3+), written before a new generation is used; without a store they remember nothing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

Code = Literal["sent", "ok", "refused", "unknown"]
"""``sent``: a request with this generation may have been sent; ``ok``: the object exists;
``refused``: Stripe refused it definitively (nothing created); ``unknown``: the answer was
lost or transient (the object may exist)."""


@dataclass(frozen=True)
class ItemState:
    """What a ledger remembers about one request: its generation, outcome and object id; ``made_by``: the
    try of the run that created the object (``ok`` only; ``None`` when not known)."""

    generation: int
    code: Code
    object_id: str | None = None
    made_by: int | None = None


GENERATION_STATE_PREFIX = "stripe_idempotency_generation:"


class SingleRequestLedger:
    """The ledger of a one-request-per-scope task: just the next generation, under
    ``stripe_idempotency_generation:<scope>``; the outcome is learnt by sending its key again."""

    def __init__(self, store: Any | None, scope: str) -> None:
        self.store = store
        self.state_key = GENERATION_STATE_PREFIX + scope

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


class BatchLedger:
    """A batch's per-item generations and outcomes; durable when given a task state store.

    A new generation is flushed before its first request, so a retry never forgets a key that may
    have paid. ``stripe_payout_batch`` holds the header (``first_attempt``, each try's start);
    ``stripe_payout_batch/<n>`` an append-only log of changed entries (at most
    :data:`BATCH_LOG_VALUE_ITEMS` each), replayed in order. Outcomes are flushed every
    ``flush_interval`` s (lost ones are re-learnt from Stripe)."""

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

    def load(self, try_number: int = 1) -> None:
        """Read what earlier tries stored, or write a first try's header; note this try's start (before any request)."""
        now = datetime.now(timezone.utc)
        meta = None if self.store is None else self.store.get(BATCH_STATE_KEY, None)
        if self.store is not None and isinstance(meta, dict) and meta.get("v") == BATCH_FORMAT_VERSION:
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
        if self.store is not None:
            header = {"v": BATCH_FORMAT_VERSION, "first_attempt": now.isoformat(), "tries": self._tries_json()}
            self.store.set(BATCH_STATE_KEY, header)

    def _tries_json(self) -> dict[str, str]:
        return {str(n): t.isoformat() for n, t in sorted(self.tries.items())}

    def try_that_created(self, created: int, current_try: int) -> int | None:
        """The latest try started by Unix time ``created`` (1 s slack); ``None`` if unknown (no store, try 3+)."""
        if self.store is None:
            return 1 if current_try == 2 else None
        started = [n for n, t in self.tries.items() if n < current_try and t.timestamp() <= created + 1]
        return max(started) if started else None

    def get(self, reference: str) -> ItemState | None:
        return _decode(self._entries.get(reference))

    def created_count(self) -> int:
        return sum(1 for entry in list(self._entries.values()) if (state := _decode(entry)) and state.code == "ok")

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


Ledger = SingleRequestLedger | BatchLedger
