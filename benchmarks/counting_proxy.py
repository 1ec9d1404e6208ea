"""A proxy in front of localstripe that timestamps every request it receives, and window maths.

It is the test suite's fault proxy (:mod:`tests.servers.fault_proxy`: Stripe's
idempotency semantics, optional injected latency) with two changes: no Nagle delay on
its answers (see :class:`_NoDelayHandler`), and the arrival time
of each request, taken when the request reaches the proxy -- i.e. after the client's
rate limiter let it go. Those timestamps are what a server-side rate limit would see,
so the sliding-window checks below are computed from them, not from the client's
own bookkeeping.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from tests.servers.fault_proxy import FaultKind, FaultPlan, FaultProxy, _ProxyHandler, _ProxyHTTPServer
from tests.servers.stub_stripe import serve_in_thread


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the request reached the proxy
    method: str
    path: str


class _NoDelayHandler(_ProxyHandler):
    """The fault proxy's handler with Nagle's algorithm off.

    The handler writes the headers and the body of a response in two sends; with Nagle on,
    the body waits for the client's delayed ACK of the headers, about 40 ms on Linux, which
    would add 40 ms to every request measured here.
    """

    disable_nagle_algorithm = True


class CountingProxy(FaultProxy):
    """A :class:`FaultProxy` that also keeps an :class:`Arrival` per request."""

    def __init__(self, upstream_url: str, plan: FaultPlan) -> None:
        super().__init__(upstream_url, plan, seed=0)
        self._arrivals: list[Arrival] = []
        self._arrivals_lock = threading.Lock()

    def _next_fault(self, method: str, path: str, query: Mapping[str, str]) -> tuple[object, int]:  # type: ignore[override]
        with self._arrivals_lock:
            self._arrivals.append(Arrival(time.monotonic(), method, path))
        return super()._next_fault(method, path, query)

    def arrivals(self, method: str | None = None, path_prefix: str = "/v1/") -> list[Arrival]:
        """Arrivals so far (in arrival order), optionally only one method and path prefix."""
        with self._arrivals_lock:
            rows = list(self._arrivals)
        return [a for a in rows if (method is None or a.method == method) and a.path.startswith(path_prefix)]

    def reset(self) -> None:
        """Forget arrivals and counters (between measurements)."""
        with self._arrivals_lock:
            self._arrivals.clear()
        self.reset_stats()


def latency_plan(latency_ms: int) -> FaultPlan:
    """Every request answered ``latency_ms`` later: a network round trip on loopback."""
    if latency_ms <= 0:
        return FaultPlan()
    return FaultPlan(rates={FaultKind.SLOW: 1.0}, slow_ms=latency_ms)


@contextlib.contextmanager
def run_counting_proxy(upstream_url: str, latency_ms: int = 0) -> Iterator[CountingProxy]:
    """Start a :class:`CountingProxy` on 127.0.0.1 (free port) in front of ``upstream_url``."""
    proxy = CountingProxy(upstream_url, latency_plan(latency_ms))
    httpd = _ProxyHTTPServer(proxy)
    httpd.RequestHandlerClass = _NoDelayHandler
    proxy._httpd = httpd
    with serve_in_thread(httpd, "counting-proxy", proxy._stop):
        yield proxy


def span(times: Sequence[float]) -> float:
    """Seconds from the first arrival to the last (``times`` sorted)."""
    return times[-1] - times[0] if len(times) > 1 else 0.0


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most requests in any half-open span ``[t, t + window)`` (``times`` sorted)."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + window, lo=i) - i)
    return best


def spans_of(times: Sequence[float], count: int) -> list[float]:
    """For each request after the first ``count``: seconds since the request ``count`` places earlier.

    Under a limit of ``count`` requests per window, every span must be at least the window
    (else ``count + 1`` requests fell inside one window); a span equal to the window means
    the limit was used in full, and ``window / span`` is the fraction of the limit achieved.
    """
    return [times[i] - times[i - count] for i in range(count, len(times))]
