"""Client-side rate limiting of Stripe requests: both of the contract's windows at once.

Built on the ``limits`` library's moving-window strategy rather than a hand-written
token bucket: a moving window never lets more than N requests into *any* 60 s (or
3600 s) span, and the same code works with in-process memory or with Redis
(``redis://...``), so workers on many machines can share one limit.

One limiter exists per (connection, limits, storage) in a process; every hook, thread and
coroutine using that connection waits on it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter


class RateLimitWaitExceeded(TimeoutError):
    """Waiting for a free slot would exceed the caller's deadline."""


@dataclass(frozen=True)
class RateLimitSpec:
    per_minute: int
    per_hour: int
    storage_uri: str = "memory://"


class StripeRateLimiter:
    """Admits a request only when every window has room; otherwise says how long to wait."""

    def __init__(self, key: str, spec: RateLimitSpec) -> None:
        self.key = key
        self.spec = spec
        storage = storage_from_string(spec.storage_uri)
        self._in_memory = isinstance(storage, MemoryStorage)
        self._limiter = MovingWindowRateLimiter(storage)
        self._items: tuple[RateLimitItem, ...] = (
            RateLimitItemPerMinute(spec.per_minute),
            RateLimitItemPerHour(spec.per_hour),
        )
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a slot in every window and return 0, or return the seconds until one frees up."""
        with self._lock:
            for item in self._items:
                if not self._limiter.test(item, self.key):
                    reset = self._limiter.get_window_stats(item, self.key).reset_time
                    return max(reset - time.time(), 0.005)
            for item in self._items:
                if not self._limiter.hit(item, self.key):
                    # Another process took the last slot between test and hit (shared storage):
                    # the slots already taken make this limiter stricter, never looser.
                    return 0.05
            return 0.0

    def acquire(self, max_wait: float | None = None) -> float:
        """Block until a slot is free; return the seconds waited."""
        start = time.monotonic()
        while True:
            wait = self.try_acquire()
            if wait == 0:
                return time.monotonic() - start
            if max_wait is not None and time.monotonic() - start + wait > max_wait:
                raise RateLimitWaitExceeded(
                    f"rate limit of {self.spec.per_minute}/min and {self.spec.per_hour}/h for {self.key} "
                    f"needs a {wait:.1f}s wait, beyond the {max_wait:.1f}s allowed"
                )
            time.sleep(min(wait, 1.0))

    async def acquire_async(self, max_wait: float | None = None) -> float:
        """Like :meth:`acquire`, without blocking the event loop."""
        start = time.monotonic()
        while True:
            wait = self.try_acquire() if self._in_memory else await asyncio.to_thread(self.try_acquire)
            if wait == 0:
                return time.monotonic() - start
            if max_wait is not None and time.monotonic() - start + wait > max_wait:
                raise RateLimitWaitExceeded(
                    f"rate limit for {self.key} needs a {wait:.1f}s wait, beyond the {max_wait:.1f}s allowed"
                )
            await asyncio.sleep(min(wait, 1.0))


_registry: dict[tuple[str, RateLimitSpec], StripeRateLimiter] = {}
_registry_lock = threading.Lock()


def get_rate_limiter(key: str, spec: RateLimitSpec) -> StripeRateLimiter:
    """The process-wide limiter for this key (usually ``stripe:<conn_id>``) and spec."""
    with _registry_lock:
        limiter = _registry.get((key, spec))
        if limiter is None:
            limiter = _registry[(key, spec)] = StripeRateLimiter(key, spec)
        return limiter
