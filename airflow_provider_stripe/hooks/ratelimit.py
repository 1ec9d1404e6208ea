"""Client-side rate limiting of Stripe requests: both of the contract's moving windows at once
(never N+1 requests in any span), per account the requests go to (:func:`limit_key`), as Stripe counts.

``limits``' strategy on shared storage (``redis://``), a deque per window for ``memory://`` (``limits``'
in-memory storage runs a timer thread, costing 0.1-0.35 ms a request)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_stripe.constants import MEMORY_STORAGE
from airflow_provider_stripe.errors import RateLimitStorageError, RateLimitWaitExceeded

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import MovingWindowRateLimiter

#: Seconds added to each window, as a request reaches Stripe after its slot.
WINDOW_MARGIN_S = 1
STORAGE_TIMEOUT_S = 5.0
"""How long a shared storage (Redis) may take to connect or answer before the request fails
(closed: nothing is sent); without it a black-holed Redis would hold a task forever."""


def hide_userinfo(uri: str) -> str:
    """``redis://:secret@host:6379/0`` -> ``redis://***@host:6379/0``: all up to the last ``@`` is hidden."""
    start = uri.find("://")
    at = uri.rfind("@")
    if start < 0 or at < start:
        return uri
    return f"{uri[: start + 3]}***{uri[at:]}"


def userinfo_secrets(uri: str) -> tuple[str, ...]:
    """The credentials in a URI's userinfo (as written and percent-decoded), for the secrets masker."""
    from urllib.parse import unquote

    start = uri.find("://")
    at = uri.rfind("@")
    if start < 0 or at < start:
        return ()
    userinfo = uri[start + 3 : at]
    parts = {userinfo, *userinfo.split(":", 1)[1:]}
    parts |= {unquote(p) for p in parts}
    return tuple(sorted(p for p in parts if p))


def masked(text: str, uri: str) -> str:
    """``text`` (e.g. an error the storage library raised) with ``uri``'s password hidden."""
    text = text.replace(uri, hide_userinfo(uri))
    for secret in userinfo_secrets(uri):
        text = text.replace(secret, "***")
    return text


def limit_key(api_key: str, account: str | None) -> str:
    """``stripe:<key fingerprint>:<account>``: the limiter key of ``api_key``'s requests to ``account``
    (``platform`` without ``Stripe-Account``); the fingerprint (16 hex of SHA-256) never holds the key."""
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return f"stripe:{fingerprint}:{account or 'platform'}"


@dataclass(frozen=True)
class RateLimitSpec:
    """The limits of one connection and where they are counted. ``repr`` hides the storage's password."""

    per_minute: int
    per_hour: int
    storage_uri: str = MEMORY_STORAGE

    def __repr__(self) -> str:
        return (
            f"RateLimitSpec(per_minute={self.per_minute}, per_hour={self.per_hour}, "
            f"storage_uri={hide_userinfo(self.storage_uri)!r})"
        )


class StripeRateLimiter:
    """Admits a request only when every window has room; otherwise says how long to wait."""

    def __init__(self, key: str, spec: RateLimitSpec) -> None:
        self.key = key
        self.spec = spec
        self.windows: tuple[tuple[int, float], ...] = (
            (spec.per_minute, 60 + WINDOW_MARGIN_S),
            (spec.per_hour, 3600 + WINDOW_MARGIN_S),
        )
        self._in_memory = spec.storage_uri.startswith(MEMORY_STORAGE)
        self._logs: tuple[deque[float], ...] = tuple(deque() for _ in self.windows)  # memory://: times, oldest first
        self._shared: MovingWindowRateLimiter | None = None
        self._items: tuple[RateLimitItem, ...] = ()
        if not self._in_memory:
            from limits import RateLimitItemPerSecond
            from limits.errors import ConfigurationError
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter

            try:
                storage = storage_from_string(
                    spec.storage_uri,
                    wrap_exceptions=True,
                    socket_timeout=STORAGE_TIMEOUT_S,
                    socket_connect_timeout=STORAGE_TIMEOUT_S,
                )
            except ConfigurationError as exc:
                # limits quotes the whole URI, password included: say it again without it.
                reason = masked(str(exc), spec.storage_uri)
                raise ConfigurationError(
                    f"rate limit storage {hide_userinfo(spec.storage_uri)!r} cannot be used ({reason}); use "
                    "memory:// or redis://host:6379/0 (pip install 'airflow-provider-stripe[redis]')"
                ) from None
            self._shared = MovingWindowRateLimiter(storage)
            self._items = tuple(RateLimitItemPerSecond(limit, int(span)) for limit, span in self.windows)
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a slot in every window and return 0, or return the seconds until one frees up; raise
        :class:`RateLimitStorageError` if the shared storage failed (nothing may be sent)."""
        with self._lock:
            if self._in_memory:
                return self._try_memory(time.monotonic())
            from limits.errors import StorageError

            try:
                return self._try_shared()
            except StorageError as exc:
                cause = masked(f"{type(exc.storage_error).__name__}: {exc.storage_error}", self.spec.storage_uri)
                raise RateLimitStorageError(
                    f"the rate limit storage {hide_userinfo(self.spec.storage_uri)!r} of {self.key} failed ({cause}): "
                    "no request was sent. Check that it is up and reachable from this worker, or fix the "
                    "connection's rate_limit_storage_uri"
                ) from None

    def _try_memory(self, now: float) -> float:
        for (limit, span), log in zip(self.windows, self._logs, strict=True):
            while log and log[0] <= now - span:
                log.popleft()
            if len(log) >= limit:
                return max(log[0] + span - now, 0.001)
        for log in self._logs:
            log.append(now)
        return 0.0

    def _try_shared(self) -> float:
        assert self._shared is not None
        for item in self._items:
            if not self._shared.test(item, self.key):
                reset = self._shared.get_window_stats(item, self.key).reset_time
                return max(reset - time.time(), 0.005)
        for item in self._items:
            if not self._shared.hit(item, self.key):
                # Another process took the last slot between test and hit (shared storage):
                # the slots already taken make this limiter stricter, never looser.
                return 0.05
        return 0.0

    def _sleep_for(self, wait: float, start: float, max_wait: float | None) -> float:
        """0 once a slot is taken, else the seconds to sleep before trying again; raise past ``max_wait``."""
        if wait and max_wait is not None and time.monotonic() - start + wait > max_wait:
            raise RateLimitWaitExceeded(
                f"rate limit of {self.spec.per_minute}/min and {self.spec.per_hour}/h for {self.key} "
                f"needs a {wait:.1f}s wait, beyond the {max_wait:.1f}s allowed"
            )
        return min(wait, 1.0)

    def acquire(self, max_wait: float | None = None) -> float:
        """Block until a slot is free; return the seconds waited."""
        start = time.monotonic()
        while sleep := self._sleep_for(self.try_acquire(), start, max_wait):
            time.sleep(sleep)
        return time.monotonic() - start

    async def acquire_async(self, max_wait: float | None = None) -> float:
        """Like :meth:`acquire`, without blocking the event loop."""
        start = time.monotonic()
        while True:
            wait = self.try_acquire() if self._in_memory else await asyncio.to_thread(self.try_acquire)
            if not (sleep := self._sleep_for(wait, start, max_wait)):
                return time.monotonic() - start
            await asyncio.sleep(sleep)


_registry: dict[tuple[str, RateLimitSpec], StripeRateLimiter] = {}
_registry_lock = threading.Lock()


def get_rate_limiter(key: str, spec: RateLimitSpec) -> StripeRateLimiter:
    """The process-wide limiter for this key (usually :func:`limit_key`) and spec."""
    with _registry_lock:
        if (key, spec) not in _registry:
            _registry[(key, spec)] = StripeRateLimiter(key, spec)
        return _registry[(key, spec)]
