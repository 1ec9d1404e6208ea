"""A recording Stripe-compatible stub, a silent server and a refused port.

Why: localstripe cannot script HTTP-level behaviour (status codes, retry
headers, delays) and has no ``/v1/account``. The stub records every request
(method, path, query, headers, body) so tests can assert on what the provider
sent -- ``Authorization``, ``Idempotency-Key``, ``Stripe-Account``,
``Stripe-Version``, user agent -- and answers from a pluggable responder.

Default answers (when no responder/queued response handles a request):

* ``GET /v1/balance`` -> a Stripe balance object (``object: balance``,
  ``livemode: false``, ``available``/``pending`` lists), see ``StubServer.balance``;
* ``GET /v1/account`` -> an account object (``id: acct_...``, ``object: account``);
* anything else -> 404 ``invalid_request_error`` "Unrecognized request URL".

Auth is checked like Stripe: no key -> 401; if ``api_keys`` is given, any other
key -> 401 "Invalid API Key provided". Every response carries a ``Request-Id``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from requests.structures import CaseInsensitiveDict

JSONBody = dict[str, Any] | list[Any] | str | bytes | None
_request_ids = itertools.count(1)


def new_request_id() -> str:
    """A unique ``req_...`` id, like Stripe's ``Request-Id`` header."""
    return f"req_stub{next(_request_ids):010d}"


def api_key_from_headers(headers: CaseInsensitiveDict[str] | Any) -> str | None:
    """Extract the API key from ``Authorization: Bearer`` or ``Basic`` (Stripe accepts both)."""
    auth = headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme == "Bearer":
        return value.strip() or None
    if scheme == "Basic":
        try:
            return base64.b64decode(value).decode().split(":", 1)[0] or None
        except (ValueError, UnicodeDecodeError):
            return None
    return None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: headers are case-insensitive, body is raw bytes."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict[str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    @property
    def form(self) -> dict[str, str]:
        """Form-encoded body as a flat dict (``metadata[k]`` keys stay flattened)."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def api_key(self) -> str | None:
        """API key from the ``Authorization`` header."""
        return api_key_from_headers(self.headers)


@dataclass
class StubResponse:
    """A scripted answer; ``body`` dicts/lists are sent as JSON.

    ``delay_s`` sleeps before answering; ``drop`` closes the connection without
    any answer (after the delay).
    """

    status: int = 200
    body: JSONBody = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False


def stripe_error(
    status: int,
    type: str = "invalid_request_error",
    code: str | None = None,
    message: str = "stub error",
    *,
    headers: dict[str, str] | None = None,
    delay_s: float = 0.0,
    **extra: Any,
) -> StubResponse:
    """A Stripe error answer ``{"error": {"type", "code", "message", ...}}``."""
    error: dict[str, Any] = {"type": type, "message": message, **extra}
    if code is not None:
        error["code"] = code
    return StubResponse(status=status, body={"error": error}, headers=dict(headers or {}), delay_s=delay_s)


Responder = Callable[[RecordedRequest], StubResponse | None]


class StubServer:
    """Handle on a running stub: ``url``, ``requests``, scripting knobs."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        api_keys: Iterable[str] | None = None,
        account_id: str = "acct_1StubAccount000",
    ) -> None:
        self.responder = responder
        self.api_keys: frozenset[str] | None = frozenset(api_keys) if api_keys is not None else None
        self.account_id = account_id
        self.balance: dict[str, Any] = {
            "object": "balance",
            "livemode": False,
            "available": [{"amount": 125_000, "currency": "eur", "source_types": {"card": 125_000}}],
            "pending": [{"amount": 4_200, "currency": "eur", "source_types": {"card": 4_200}}],
        }
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: list[StubResponse] = []
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    # -- recording -------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL ``http://127.0.0.1:PORT``."""
        assert self._httpd is not None, "stub not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests for one path (and method, if given)."""
        return [r for r in self.requests if r.path == path and (method is None or r.method == method)]

    def clear(self) -> None:
        """Forget recorded requests and queued responses."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()

    # -- scripting -------------------------------------------------------
    def enqueue(self, *responses: StubResponse) -> None:
        """Answer the next requests (any path) with these, in order, before the responder."""
        with self._lock:
            self._queue.extend(responses)

    def _record(self, req: RecordedRequest) -> StubResponse | None:
        with self._lock:
            self._requests.append(req)
            return self._queue.pop(0) if self._queue else None

    def respond(self, req: RecordedRequest) -> StubResponse:
        """Queued response, else responder, else the built-in routes."""
        queued = self._record(req)
        if queued is not None:
            return queued
        if self.responder is not None:
            scripted = self.responder(req)
            if scripted is not None:
                return scripted
        return self._default(req)

    def _default(self, req: RecordedRequest) -> StubResponse:
        key = req.api_key
        if key is None:
            return stripe_error(
                401,
                message="You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if self.api_keys is not None and key not in self.api_keys:
            return stripe_error(401, message=f"Invalid API Key provided: {key[:8]}****{key[-4:]}")
        if req.method == "GET" and req.path == "/v1/balance":
            return StubResponse(200, self.balance)
        if req.method == "GET" and req.path == "/v1/account":
            return StubResponse(200, self.account())
        return stripe_error(404, message=f"Unrecognized request URL ({req.method}: {req.path}).")

    def account(self) -> dict[str, Any]:
        """The account object answered on ``GET /v1/account``."""
        return {
            "id": self.account_id,
            "object": "account",
            "business_type": "company",
            "charges_enabled": True,
            "payouts_enabled": True,
            "country": "FR",
            "default_currency": "eur",
            "email": "payments@example.com",
            "settings": {"dashboard": {"display_name": "Stub Ltd"}},
            "type": "standard",
        }

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the server stops (bounded teardown)."""
        if seconds > 0:
            self._stop.wait(seconds)


class _StubHandler(BaseHTTPRequestHandler):
    server: _StubHTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without this, Nagle holds the body ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(self.headers.items()),
            body=body,
        )
        stub = self.server.stub
        answer = stub.respond(req)
        stub.sleep(answer.delay_s)
        if answer.drop:
            abort_connection(self)
            return
        write_response(self, answer.status, answer.body, answer.headers)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle


class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1 that does not print a traceback when a client hangs up.

    Clients that time out (on purpose, in fault tests) close the socket while an answer is
    being written; that is expected here, not an error worth a traceback in the test output.
    """

    daemon_threads = True
    request_queue_size = 128  # listen backlog; the default 5 resets bursts of clients

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _StubHTTPServer(QuietHTTPServer):
    def __init__(self, stub: StubServer) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.stub = stub


def encode_body(body: JSONBody) -> tuple[bytes, str]:
    """Bytes and content type for a response body."""
    if body is None:
        return b"", "application/json"
    if isinstance(body, bytes):
        return body, "application/json"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


def write_response(
    handler: BaseHTTPRequestHandler, status: int, body: JSONBody, headers: dict[str, str] | None = None
) -> None:
    """Send a complete HTTP/1.1 response with ``Content-Length`` and a ``Request-Id``."""
    payload, content_type = encode_body(body)
    extra = CaseInsensitiveDict(headers or {})
    handler.send_response(status)
    if "Content-Type" not in extra:
        handler.send_header("Content-Type", content_type)
    if "Request-Id" not in extra:
        handler.send_header("Request-Id", new_request_id())
    for name, value in extra.items():
        if name.lower() not in ("content-length", "connection", "transfer-encoding"):
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def abort_connection(handler: BaseHTTPRequestHandler) -> None:
    """Reset the client connection (RST) without sending any response."""
    handler.close_connection = True
    sock: socket.socket = handler.connection
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def serve_in_thread(httpd: ThreadingHTTPServer, name: str, stopping: threading.Event) -> Iterator[None]:
    """Run ``serve_forever`` in a daemon thread; on exit set ``stopping`` (wakes delayed handlers), shut down."""
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def run_stub(
    responder: Responder | None = None,
    *,
    api_keys: Iterable[str] | None = None,
    account_id: str = "acct_1StubAccount000",
) -> Iterator[StubServer]:
    """Start a recording stub on 127.0.0.1 (free port); yield its handle."""
    stub = StubServer(responder, api_keys=api_keys, account_id=account_id)
    httpd = _StubHTTPServer(stub)
    stub._httpd = httpd
    with serve_in_thread(httpd, "stripe-stub", stub._stop):
        yield stub


class SilentServer:
    """A TCP server that accepts connections, reads nothing back and never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, name="silent-server", daemon=True)

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        """Number of connections accepted so far."""
        return len(self._conns)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():  # bounded: stops at teardown
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)

    def start(self) -> None:
        """Start accepting."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
        self._sock.close()


@contextlib.contextmanager
def run_silent_server() -> Iterator[SilentServer]:
    """A server whose connections hang forever (for client timeout tests)."""
    server = SilentServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


_reserved: list[socket.socket] = []


def refused_port() -> int:
    """A 127.0.0.1 port where nothing listens, so connecting is refused.

    The port stays bound (not listening) for the life of the process so no other
    server can take it meanwhile.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    _reserved.append(sock)
    return int(sock.getsockname()[1])


def refused_url() -> str:
    """``http://127.0.0.1:PORT`` for a port that refuses connections."""
    return f"http://127.0.0.1:{refused_port()}"
