"""StripeEventTrigger: poll Stripe's ``/v1/events`` and fire each new event once, oldest first,
so an :class:`airflow.sdk.AssetWatcher` can drive DAGs without a public webhook endpoint.

Each poll lists events since the cursor's floor, which trails the newest fired event by
``lookback`` (late-listed events still fire; fired ids are skipped). Under an asset watcher
(Airflow 3.3) the cursor is saved in the asset state store once the triggerer has stored the
batch: delivery is at least once. Failed polls back off and never give up. No key in the kwargs.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_stripe.compat import asset_state_store, run_blocking
from airflow_provider_stripe.constants import DEFAULT_CONN_ID, EVENT_RETENTION_S, PAGE_SIZE
from airflow_provider_stripe.errors import StripeConfigurationError, StripeRequestError, redact
from airflow_provider_stripe.events.assets import summarize_event
from airflow_provider_stripe.validation import ACCOUNT_ID_RE

if TYPE_CHECKING:
    from airflow_provider_stripe.hooks.requests import StripeRequests
    from airflow_provider_stripe.hooks.stripe import StripeHook

MIN_POLL_INTERVAL = 1.0

COMMIT_DELAY_SECONDS = 5.0
"""Least time between handing a batch to the triggerer and saving its cursor: the triggerer
stores fired events about every second, so saving earlier could skip events in a crash."""

HEARTBEAT_SECONDS = 3600
"""How often an idle trigger re-saves its cursor, so a restart can tell downtime from quiet."""

MAX_SEEN = 10_000
"""Most event ids a cursor remembers; beyond that the look-back window shrinks."""

_CURSOR_VERSION = 1
_TYPE_FILTER = re.compile(r"[a-z0-9_]+(\.([a-z0-9_]+|\*))*|\*")


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` failed polls: ``base * 2**(failures-1)`` capped, with equal jitter."""
    if failures < 1:
        return 0.0
    delay = min(cap, base * 2 ** min(failures - 1, 32))
    return delay / 2 + random.uniform(0, delay / 2)


@dataclass(frozen=True)
class EventCursor:
    """Where a stream of Stripe events stands: what has been fired, and from where to list next.

    :param floor: unix seconds; events created earlier are never listed again.
    :param high: ``created`` of the newest event fired (or the start time).
    :param seen: ``(event_id, created)`` of the events fired with ``created >= floor``.
    :param polled_at: local unix time of the last successful poll (saved at least hourly).
    """

    floor: int
    high: int
    seen: tuple[tuple[str, int], ...] = ()
    polled_at: int = 0

    @classmethod
    def starting_at(cls, timestamp: int) -> EventCursor:
        return cls(floor=timestamp, high=timestamp, seen=(), polled_at=timestamp)

    def is_new(self, summary: dict[str, Any]) -> bool:
        created = summary.get("created") or 0
        return created >= self.floor and summary["event_id"] not in {event_id for event_id, _ in self.seen}

    def advance(self, fired: Iterable[dict[str, Any]], lookback: int) -> EventCursor:
        """The cursor after ``fired`` events (oldest first) went out."""
        seen = dict(self.seen)
        high = self.high
        for summary in fired:
            created = int(summary.get("created") or 0)
            seen[summary["event_id"]] = created
            high = max(high, created)
        floor = max(self.floor, high - lookback)
        kept = sorted(((i, c) for i, c in seen.items() if c >= floor), key=lambda item: item[1])
        while len(kept) > MAX_SEEN:
            # Drop whole seconds from the oldest end, so "every fired event at or after floor is in seen" holds.
            floor = kept[0][1] + 1
            kept = [(i, c) for i, c in kept if c >= floor]
        return replace(self, floor=floor, high=high, seen=tuple(kept))

    def to_dict(self) -> dict[str, Any]:
        return {"version": _CURSOR_VERSION, **asdict(self), "seen": [list(item) for item in self.seen]}

    @classmethod
    def from_dict(cls, data: Any) -> EventCursor:
        """Parse a saved cursor; raise ``ValueError`` saying what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError(f"a Stripe event cursor is a dict, not {type(data).__name__}")
        if data.get("version") != _CURSOR_VERSION:
            raise ValueError(f"unsupported Stripe event cursor version {data.get('version')!r}")
        try:
            seen = tuple((str(event_id), int(created)) for event_id, created in data.get("seen", ()))
            return cls(
                floor=int(data["floor"]), high=int(data["high"]), seen=seen, polled_at=int(data.get("polled_at", 0))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed Stripe event cursor ({type(exc).__name__}: {exc})") from None


class AssetStateCursorStore:
    """The watched assets' AIP-103 state stores: the cursor is written to each, the most advanced read back."""

    commit_delay = COMMIT_DELAY_SECONDS

    def __init__(self, accessors: Any, key: str) -> None:
        # Airflow offers the per-asset accessors only by subscripting with an Asset, so read its two
        # dicts; if their layout ever changes, fall back to the single-asset API.
        per_asset = [*getattr(accessors, "_by_name", {}).values(), *getattr(accessors, "_by_uri", {}).values()]
        self._accessors = per_asset or [accessors]
        self.key = key

    async def load(self) -> dict[str, Any] | None:
        values = [await accessor.aget(self.key) for accessor in self._accessors]
        found: list[dict[str, Any]] = [value for value in values if isinstance(value, dict)]
        return max(found, key=lambda v: (v.get("high", 0), v.get("polled_at", 0)), default=None)

    async def save(self, cursor: dict[str, Any]) -> None:
        for accessor in self._accessors:
            await accessor.aset(self.key, cursor)


class InstanceCursorStore:
    """No state store reachable: keep the cursor on the trigger (lost when its process ends)."""

    commit_delay = 0.0  # nothing outlives the process, so nothing to protect

    def __init__(self, trigger: StripeEventTrigger) -> None:
        self._trigger = trigger

    async def load(self) -> dict[str, Any] | None:
        return self._trigger.cursor

    async def save(self, cursor: dict[str, Any]) -> None:
        self._trigger.cursor = cursor


CursorStore = AssetStateCursorStore | InstanceCursorStore


class StripeEventTrigger(BaseEventTrigger):
    """Fire a :class:`TriggerEvent` (payload: :func:`~airflow_provider_stripe.events.assets.summarize_event`)
    for each new Stripe event of the given types, oldest first.

    :param types: Stripe ``type`` filters (``payout.*`` allowed), one list request each; empty: every event.
    :param account_id: connected account (``acct_...``) to read; default: the connection's, or the platform.
    :param cursor: a saved :meth:`EventCursor.to_dict` (one in the asset state store takes precedence).
    :param start_from: without a cursor: ``"now"``, ``"oldest"`` (up to 30 days back) or a unix timestamp.
    :param max_backoff: longest wait, in seconds, after failed polls.
    :param lookback: seconds of overlap between polls, to catch events Stripe lists late.
    :param on_expired_cursor: ``"oldest"`` or ``"now"``: where to resume past Stripe's 30-day retention.
    :param page_size: events per list request (1-100).
    """

    def __init__(
        self,
        *,
        stripe_conn_id: str = DEFAULT_CONN_ID,
        types: Sequence[str] = (),
        account_id: str | None = None,
        cursor: dict[str, Any] | None = None,
        start_from: Literal["now", "oldest"] | int = "now",
        poll_interval: float = 30.0,
        max_backoff: float = 600.0,
        lookback: int = 60,
        on_expired_cursor: Literal["oldest", "now"] = "oldest",
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__()
        if isinstance(types, str):
            types = [types]
        self.stripe_conn_id = stripe_conn_id
        self.types = list(dict.fromkeys(types))
        self.account_id = account_id
        self.cursor = cursor
        self.start_from = start_from
        self.poll_interval = float(poll_interval)
        self.max_backoff = float(max_backoff)
        self.lookback = int(lookback)
        self.on_expired_cursor = on_expired_cursor
        self.page_size = int(page_size)
        # Fail at DAG-parse time, naming the argument, rather than in the triggerer.
        for event_type in self.types:
            if not isinstance(event_type, str) or not _TYPE_FILTER.fullmatch(event_type):
                raise ValueError(
                    f"StripeEventTrigger types: {event_type!r} is not a Stripe event type filter "
                    "(e.g. 'payout.paid' or 'payout.*')"
                )
        if self.account_id is not None and not ACCOUNT_ID_RE.fullmatch(self.account_id):
            raise ValueError(
                f"StripeEventTrigger account_id: {self.account_id!r} is not a Stripe account id (acct_...)"
            )
        start = self.start_from
        if not (start in ("now", "oldest") or (isinstance(start, int) and not isinstance(start, bool) and start > 0)):
            raise ValueError("StripeEventTrigger start_from: use 'now', 'oldest' or a unix timestamp (int)")
        if self.poll_interval < MIN_POLL_INTERVAL:
            raise ValueError(f"StripeEventTrigger poll_interval must be at least {MIN_POLL_INTERVAL} s")
        if self.max_backoff < self.poll_interval:
            raise ValueError("StripeEventTrigger max_backoff must be at least poll_interval")
        if not 0 <= self.lookback <= 3600:
            raise ValueError("StripeEventTrigger lookback must be between 0 and 3600 seconds")
        if self.on_expired_cursor not in ("oldest", "now"):
            raise ValueError("StripeEventTrigger on_expired_cursor: use 'oldest' or 'now'")
        if not 1 <= self.page_size <= PAGE_SIZE:
            raise ValueError(f"StripeEventTrigger page_size must be between 1 and {PAGE_SIZE} (Stripe's limit)")
        if self.cursor is not None:
            EventCursor.from_dict(self.cursor)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = ["stripe_conn_id", "types", "account_id", "cursor", "start_from", "poll_interval", "max_backoff"]
        kwargs += ["lookback", "on_expired_cursor", "page_size"]
        return f"{type(self).__module__}.{type(self).__qualname__}", {k: getattr(self, k) for k in kwargs}

    async def run(self) -> AsyncGenerator[TriggerEvent, None]:
        store = self._cursor_store()
        hook = self._hook()
        cursor: EventCursor | None = None
        # Cursors not saved yet, each with the monotonic time its batch went out, oldest first.
        unsaved: deque[tuple[float, EventCursor]] = deque()
        saved_polled_at = 0
        failures = 0
        while True:
            try:
                if cursor is None:
                    cursor = await self._load_cursor(store)
                    saved_polled_at = cursor.polled_at
                ready = [c for since, c in unsaved if time.monotonic() - since >= store.commit_delay]
                if ready:  # a prefix of ``unsaved``: save the newest cursor whose events are stored
                    await self._save(store, ready[-1])
                    saved_polled_at = ready[-1].polled_at
                    for _ in ready:
                        unsaved.popleft()
                cursor = self._within_retention(cursor, int(time.time()))
                requests = await run_blocking(getattr, hook, "requests")  # reads the connection
                polled_at = int(time.time())
                batch = await self._list_new(requests, cursor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                hook = self._hook()  # re-read the connection: a fixed key or secret takes effect
                delay = backoff_delay(failures, self.poll_interval, self.max_backoff)
                known = isinstance(exc, (StripeConfigurationError, StripeRequestError))  # secret-free, actionable
                self.log.warning(
                    "Polling Stripe events (connection %r, types %s) failed %d time(s) in a row: %s. "
                    "Retrying in %.1f s.",
                    self.stripe_conn_id,
                    self.types or "all",
                    failures,
                    str(exc) if known else redact(f"{type(exc).__name__}: {exc}"),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            for summary in batch:
                yield TriggerEvent(summary)
            cursor = replace(cursor.advance(batch, self.lookback), polled_at=polled_at)
            if batch or (not unsaved and polled_at - saved_polled_at >= HEARTBEAT_SECONDS):
                # Saved on a later loop, once the triggerer has stored the events (commit_delay).
                unsaved.append((time.monotonic(), cursor))
            await asyncio.sleep(self.poll_interval)

    async def _list_new(self, requests: StripeRequests, cursor: EventCursor) -> list[dict[str, Any]]:
        """Every event after ``cursor`` matching ``types``, oldest first, each once."""
        new: dict[str, dict[str, Any]] = {}
        filters: list[str | None] = [*self.types] or [None]
        for type_filter in filters:
            params: dict[str, Any] = {"created": {"gte": cursor.floor}, "limit": self.page_size}
            if type_filter is not None:
                params["type"] = type_filter
            listed = [summarize_event(event) async for event in requests.list_all_async("events", params)]
            for summary in reversed(listed):  # Stripe lists newest first
                if cursor.is_new(summary):
                    new.setdefault(summary["event_id"], summary)
        return sorted(new.values(), key=lambda s: s["created"] or 0)

    def _cursor_store(self) -> CursorStore:
        types = ",".join(sorted(self.types)) or "*"
        key = f"stripe_events_cursor:{self.stripe_conn_id}:{self.account_id or 'platform'}:{types}"  # one per stream
        if len(key) > 200:  # the store's keys are at most 512 chars; keep them readable when short
            key = f"{key[:150]}...{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        state_store = asset_state_store(self)
        if state_store is not None:
            return AssetStateCursorStore(state_store, key)
        self.log.info(
            "StripeEventTrigger runs without an asset state store (not an asset watcher on Airflow >= 3.3): "
            "its cursor is kept in memory only and a restart resumes from its 'cursor'/'start_from' argument."
        )
        return InstanceCursorStore(self)

    async def _load_cursor(self, store: CursorStore) -> EventCursor:
        saved = await store.load()
        for source, data in (("the state store", saved), ("the 'cursor' argument", self.cursor)):
            if data is None:
                continue
            try:
                return EventCursor.from_dict(data)
            except ValueError as exc:
                self.log.warning("Ignoring the Stripe event cursor from %s: %s", source, exc)
        now = int(time.time())
        start = {"now": now, "oldest": now - EVENT_RETENTION_S}.get(str(self.start_from), self.start_from)
        cursor = EventCursor.starting_at(int(start))
        # Saved at once: a restart must not move "now" forward past events created meanwhile.
        await self._save(store, cursor)
        return cursor

    async def _save(self, store: CursorStore, cursor: EventCursor) -> None:
        data = cursor.to_dict()
        await store.save(data)
        self.cursor = data

    def _within_retention(self, cursor: EventCursor, now: int) -> EventCursor:
        """Warn about, and step over, events Stripe deleted (30-day retention) before they were listed."""
        oldest_kept = now - EVENT_RETENTION_S
        listed_until = max(cursor.floor, cursor.polled_at - self.lookback)
        if listed_until >= oldest_kept - HEARTBEAT_SECONDS:
            return cursor
        resume = oldest_kept if self.on_expired_cursor == "oldest" else now
        self.log.warning(
            "The Stripe event cursor (connection %r, types %s) last listed events up to %s, more than Stripe's "
            "30-day event retention ago: events created between %s and %s are deleted and will not fire. "
            "Resuming from %s (on_expired_cursor=%r). Reconcile that period from the objects themselves "
            "(e.g. list payouts by arrival date) if it matters.",
            self.stripe_conn_id,
            self.types or "all",
            _iso(listed_until),
            _iso(listed_until),
            _iso(oldest_kept),
            "the oldest retained event" if resume == oldest_kept else "now",
            self.on_expired_cursor,
        )
        return EventCursor(floor=resume, high=max(cursor.high, resume), seen=(), polled_at=now)

    def _hook(self) -> StripeHook:
        from airflow_provider_stripe.hooks.stripe import StripeHook

        return StripeHook(self.stripe_conn_id, account_id=self.account_id)


def _iso(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
