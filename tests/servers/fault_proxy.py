"""A fault-injecting reverse proxy with Stripe's idempotency semantics.

Why: localstripe ignores ``Idempotency-Key`` and never fails at the HTTP level,
so "never pay twice" cannot be tested against it directly. This proxy sits in
front of it (or any upstream), injects faults, and enforces idempotency the way
Stripe documents it:

* only ``POST`` requests carrying ``Idempotency-Key`` are idempotent; keys are
  scoped per API key + ``Stripe-Account``;
* the first request is forwarded and its result (status, body) stored if it is
  2xx or 4xx (but not 409/429); a 5xx, 429 or upstream connection failure is
  not stored, so a retry re-executes;
* same key + same parameters (method, path, body) -> the stored result is
  replayed without forwarding, with ``Idempotent-Replayed: true`` and
  ``Original-Request: <request id>``;
* same key + different parameters -> 400 ``idempotency_error``;
* same key while the first request is still in flight -> 409
  ``idempotency_error`` / ``idempotency_key_in_use``.

Faults (``FaultKind``), chosen per request from a scripted queue first, then at
configured rates with a seeded RNG; only requests whose method is in
``FaultPlan.methods`` and path starts with ``FaultPlan.path_prefix`` are
eligible. Error faults and ``RESET`` happen before idempotency and forwarding
(nothing is stored or executed); ``SLOW`` delays after the key is marked in
flight and before forwarding; ``LOST_RESPONSE`` forwards (and stores the
idempotent result), then resets the connection instead of answering.

Only ``GET``/``POST``/``DELETE`` under ``/v1/`` are proxied (else 404/405).
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from requests.structures import CaseInsensitiveDict

from tests.servers.stub_stripe import (
    QuietHTTPServer,
    abort_connection,
    api_key_from_headers,
    new_request_id,
    serve_in_thread,
    write_response,
)

PROXIED_METHODS = frozenset({"GET", "POST", "DELETE"})
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_NOT_COPIED_BACK = _HOP_BY_HOP | {"date", "server"}


class FaultKind(Enum):
    """What the proxy can do to a request instead of (or on top of) proxying it."""

    RATE_LIMITED_RETRY = "429_should_retry"  # 429 + Stripe-Should-Retry: true
    RATE_LIMITED = "429"  # 429, no Stripe-Should-Retry header
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    RESET = "reset"  # connection reset before forwarding
    LOST_RESPONSE = "lost_response"  # forwarded + stored, then connection reset
    SLOW = "slow"  # answer after a delay


ERROR_FAULTS: Mapping[FaultKind, tuple[int, dict[str, Any]]] = {
    FaultKind.RATE_LIMITED_RETRY: (
        429,
        {"type": "invalid_request_error", "code": "rate_limit", "message": "Request rate limit exceeded."},
    ),
    FaultKind.RATE_LIMITED: (
        429,
        {"type": "invalid_request_error", "code": "rate_limit", "message": "Request rate limit exceeded."},
    ),
    FaultKind.SERVER_ERROR: (500, {"type": "api_error", "message": "An unknown error occurred (injected)."}),
    FaultKind.UNAVAILABLE: (503, {"type": "api_error", "message": "Service unavailable (injected)."}),
}


@dataclass(frozen=True)
class Fault:
    """One injected fault. ``delay_ms`` is the delay of ``SLOW`` (default: the plan's ``slow_ms``);
    ``should_retry`` sets ``Stripe-Should-Retry`` on error faults (429_should_retry: true by default)."""

    kind: FaultKind
    delay_ms: int | None = None
    should_retry: bool | None = None


ScriptItem = Fault | FaultKind | None


def _as_fault(item: ScriptItem) -> Fault | None:
    return Fault(item) if isinstance(item, FaultKind) else item


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject.

    ``script`` is consumed first, one item per eligible request in arrival
    order (``None`` = let that request through); then each eligible request
    draws from ``rates`` (probabilities, summing to <= 1).
    """

    rates: Mapping[FaultKind, float] = field(default_factory=dict)
    script: Sequence[ScriptItem] = ()
    slow_ms: int = 200
    methods: frozenset[str] = PROXIED_METHODS
    path_prefix: str = "/v1/"
    query: Mapping[str, str] = field(default_factory=dict)
    """Only requests whose query holds these parameters (e.g. one time slice's ``created[gte]``)."""

    def __post_init__(self) -> None:
        total = sum(self.rates.values())
        if any(r < 0 for r in self.rates.values()) or total > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1, got {dict(self.rates)}")

    def eligible(self, method: str, path: str, query: Mapping[str, str] | None = None) -> bool:
        """Whether this request may receive a fault."""
        params = query or {}
        return (
            method in self.methods
            and path.startswith(self.path_prefix)
            and all(params.get(k) == v for k, v in self.query.items())
        )


@dataclass(frozen=True)
class ProxyRecord:
    """What happened to one request (for assertions)."""

    method: str
    path: str
    idempotency_key: str | None
    fault: FaultKind | None
    outcome: str  # forwarded | replayed | injected | reset | lost | idempotency_mismatch | ...
    status: int | None
    query: tuple[tuple[str, str], ...] = ()
    """The query string's parameters, in order."""

    @property
    def params(self) -> dict[str, str]:
        """The query as a dict (the last value of a repeated key wins)."""
        return dict(self.query)


@dataclass
class _IdemEntry:
    fingerprint: tuple[Any, ...]
    done: bool = False
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    request_id: str = ""


_Scope = tuple[str | None, str | None, str]


def _fingerprint(method: str, path: str, body: bytes, content_type: str) -> tuple[Any, ...]:
    """Parameters of a request, independent of form-field order."""
    text = body.decode("utf-8", "replace")
    if content_type.startswith("application/json"):
        try:
            return (method, path, json.dumps(json.loads(text or "null"), sort_keys=True))
        except ValueError:
            return (method, path, text)
    return (method, path, tuple(sorted(parse_qsl(text, keep_blank_values=True))))


def _stats_template() -> dict[str, int]:
    counters = dict.fromkeys(
        (
            "requests",
            "forwarded",
            "replayed",
            "idempotency_mismatch",
            "idempotency_in_use",
            "upstream_errors",
        ),
        0,
    )
    counters.update(dict.fromkeys((k.value for k in FaultKind), 0))
    return counters


class FaultProxy:
    """Handle on a running proxy: ``url``, ``stats``, ``records``, runtime plan changes."""

    def __init__(self, upstream_url: str, plan: FaultPlan, seed: int, upstream_timeout: float = 30.0) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream_url!r}")
        self.upstream_url = upstream_url.rstrip("/")
        self._upstream = (parts.hostname, parts.port or 80, parts.path.rstrip("/"))
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._plan = plan
        self._script: collections.deque[ScriptItem] = collections.deque(plan.script)
        self._stats = _stats_template()
        self._records: list[ProxyRecord] = []
        self._idem: dict[_Scope, _IdemEntry] = {}
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    # -- public knobs ------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL ``http://127.0.0.1:PORT``."""
        assert self._httpd is not None, "proxy not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def stats(self) -> dict[str, int]:
        """Counters: requests, forwarded, replayed, idempotency_*, upstream_errors, and one per ``FaultKind.value``."""
        with self._lock:
            return dict(self._stats)

    @property
    def records(self) -> list[ProxyRecord]:
        """One record per request received, in completion order."""
        with self._lock:
            return list(self._records)

    @property
    def plan(self) -> FaultPlan:
        """The current fault plan."""
        with self._lock:
            return self._plan

    def set_plan(self, plan: FaultPlan, seed: int | None = None) -> None:
        """Replace the plan (its script restarts); optionally reseed the RNG."""
        with self._lock:
            self._plan = plan
            self._script = collections.deque(plan.script)
            if seed is not None:
                self._rng.seed(seed)

    def inject_next(self, *faults: ScriptItem) -> None:
        """Append scripted faults for the next eligible requests."""
        with self._lock:
            self._script.extend(faults)

    def clear_faults(self) -> None:
        """No more faults: empty plan and script (idempotency store is kept)."""
        self.set_plan(FaultPlan())

    def reset_stats(self) -> None:
        """Zero the counters and forget the records."""
        with self._lock:
            self._stats = _stats_template()
            self._records.clear()

    def forget_idempotency_keys(self) -> None:
        """Drop every stored idempotent result (like Stripe's 24 h expiry)."""
        with self._lock:
            self._idem.clear()

    # -- internals used by the handler ---------------------------------------
    def _count(self, key: str) -> None:
        with self._lock:
            self._stats[key] += 1

    def _record(self, record: ProxyRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _next_fault(self, method: str, path: str, query: Mapping[str, str]) -> tuple[Fault | None, int]:
        """Pick the fault for a request (script first, then rates); count it."""
        with self._lock:
            self._stats["requests"] += 1
            plan = self._plan
            if not plan.eligible(method, path, query):
                return None, plan.slow_ms
            fault: Fault | None = None
            if self._script:
                fault = _as_fault(self._script.popleft())
            elif plan.rates:
                draw = self._rng.random()
                acc = 0.0
                for kind, rate in plan.rates.items():
                    acc += rate
                    if draw < acc:
                        fault = Fault(kind)
                        break
            if fault is not None:
                self._stats[fault.kind.value] += 1
            return fault, plan.slow_ms

    def _idem_begin(self, scope: _Scope, fp: tuple[Any, ...]) -> tuple[str, _IdemEntry | None]:
        """Claim a key: ``forward`` (now in flight), ``replay``, ``mismatch`` or ``in_use``."""
        with self._lock:
            entry = self._idem.get(scope)
            if entry is None:
                self._idem[scope] = _IdemEntry(fingerprint=fp)
                return "forward", None
            if not entry.done:
                self._stats["idempotency_in_use"] += 1
                return "in_use", None
            if entry.fingerprint != fp:
                self._stats["idempotency_mismatch"] += 1
                return "mismatch", None
            self._stats["replayed"] += 1
            return "replay", entry

    def _idem_finish(self, scope: _Scope, status: int | None, headers: dict[str, str], body: bytes, rid: str) -> None:
        """Store a final result, or release the key so a retry re-executes."""
        with self._lock:
            entry = self._idem.get(scope)
            if entry is None:
                return
            if status is not None and 200 <= status < 500 and status not in (409, 429):
                entry.done, entry.status, entry.headers, entry.body, entry.request_id = True, status, headers, body, rid
            else:
                del self._idem[scope]

    def _forward(
        self, method: str, target: str, headers: CaseInsensitiveDict[str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the request upstream; return status, end-to-end headers, body."""
        host, port, base = self._upstream
        out = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(host, port, timeout=self.upstream_timeout)
        try:
            conn.request(method, base + target, body=body if body or method == "POST" else None, headers=out)
            self._count("forwarded")
            resp = conn.getresponse()
            data = resp.read()
            back = {k: v for k, v in resp.getheaders() if k.lower() not in _NOT_COPIED_BACK}
            return resp.status, back, data
        finally:
            conn.close()

    def sleep_ms(self, ms: int) -> None:
        """Delay, waking early at shutdown."""
        if ms > 0:
            self._stop.wait(ms / 1000)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyHTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without this, Nagle holds the body ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _error(self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        write_response(self, status, {"error": error}, headers)

    def _handle(self) -> None:
        proxy = self.server.proxy
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(self.headers.items())
        method = self.command
        if method not in PROXIED_METHODS:
            self._error(405, {"type": "invalid_request_error", "message": f"Method {method} not proxied."})
            return
        if not path.startswith("/v1/"):
            self._error(404, {"type": "invalid_request_error", "message": f"Path {path} not proxied."})
            return
        idem_key = headers.get("Idempotency-Key") if method == "POST" else None

        query = tuple(parse_qsl(parts.query, keep_blank_values=True))
        fault, slow_ms = proxy._next_fault(method, path, dict(query))
        kind = fault.kind if fault else None

        def record(outcome: str, status: int | None) -> None:
            proxy._record(ProxyRecord(method, path, idem_key, kind, outcome, status, query))

        if fault is not None and kind in ERROR_FAULTS:
            status, error = ERROR_FAULTS[fault.kind]
            should_retry = fault.should_retry
            if should_retry is None and kind is FaultKind.RATE_LIMITED_RETRY:
                should_retry = True
            extra = {} if should_retry is None else {"Stripe-Should-Retry": "true" if should_retry else "false"}
            record("injected", status)
            self._error(status, dict(error), extra)
            return
        if kind is FaultKind.RESET:
            record("reset", None)
            abort_connection(self)
            return
        delay_ms = 0
        if fault is not None and fault.kind is FaultKind.SLOW:
            delay_ms = slow_ms if fault.delay_ms is None else fault.delay_ms

        scope: _Scope | None = None
        decision, stored = "forward", None
        if idem_key:
            scope = (api_key_from_headers(headers), headers.get("Stripe-Account"), idem_key)
            fp = _fingerprint(method, path, body, headers.get("Content-Type") or "")
            decision, stored = proxy._idem_begin(scope, fp)
        if decision == "mismatch":
            record("idempotency_mismatch", 400)
            self._error(
                400,
                {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent requests can only be used with the same parameters they were "
                    f"first used with. Try using a key other than '{idem_key}' if you meant to execute a "
                    "different request.",
                },
            )
            return
        if decision == "in_use":
            record("idempotency_in_use", 409)
            self._error(
                409,
                {
                    "type": "idempotency_error",
                    "code": "idempotency_key_in_use",
                    "message": "There is currently another in-progress request using this Stripe API key and "
                    f"idempotency key ('{idem_key}'). Please try again later.",
                },
            )
            return

        proxy.sleep_ms(delay_ms)
        if decision == "replay":
            assert stored is not None
            status, out_headers, payload = stored.status, dict(stored.headers), stored.body
            out_headers.update({"Idempotent-Replayed": "true", "Original-Request": stored.request_id})
            out_headers["Request-Id"] = new_request_id()
            outcome = "replayed"
        else:
            rid = new_request_id()
            try:
                status, out_headers, payload = proxy._forward(method, self.path, headers, body)
            except (OSError, http.client.HTTPException) as exc:
                if scope is not None:
                    proxy._idem_finish(scope, None, {}, b"", rid)
                proxy._count("upstream_errors")
                record("upstream_error", 502)
                self._error(502, {"type": "api_error", "message": f"fault proxy: upstream failed: {exc!r}"})
                return
            out_headers.setdefault("Request-Id", rid)
            if scope is not None:
                proxy._idem_finish(scope, status, dict(out_headers), payload, out_headers["Request-Id"])
            outcome = "forwarded"

        if kind is FaultKind.LOST_RESPONSE:
            record(f"lost_after_{outcome}", status)
            abort_connection(self)
            return
        record(outcome, status)
        write_response(self, status, payload, out_headers)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle


class _ProxyHTTPServer(QuietHTTPServer):
    def __init__(self, proxy: FaultProxy) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.proxy = proxy


@contextlib.contextmanager
def run_fault_proxy(
    upstream_url: str,
    faults: FaultPlan | None = None,
    seed: int = 0,
    *,
    upstream_timeout: float = 30.0,
) -> Iterator[FaultProxy]:
    """Start the proxy on 127.0.0.1 (free port) in front of ``upstream_url``; yield its handle."""
    proxy = FaultProxy(upstream_url, faults or FaultPlan(), seed, upstream_timeout)
    httpd = _ProxyHTTPServer(proxy)
    proxy._httpd = httpd
    with serve_in_thread(httpd, "fault-proxy", proxy._stop):
        yield proxy


def plan(*script: ScriptItem, rates: Mapping[FaultKind, float] | None = None, **kwargs: Any) -> FaultPlan:
    """Shorthand: ``plan(FaultKind.RESET, None, rates={FaultKind.SLOW: 0.1}, methods=frozenset({"POST"}))``."""
    return FaultPlan(rates=dict(rates or {}), script=tuple(script), **kwargs)


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until truthy or ``timeout`` s pass; return whether it became truthy."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
