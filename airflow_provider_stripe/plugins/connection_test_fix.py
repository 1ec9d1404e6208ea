"""Make the Test button work for Stripe connections on Airflow 3.3.1-3.3.2 (why: docs/connection.md)
by dropping ``port: 0`` from their Test requests, and keep the tested id in :data:`TESTED_CONNECTION_ID`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from airflow_provider_stripe.constants import CONN_TYPE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TEST_PATH_SUFFIX = "/api/v2/connections/test"
_MAX_BODY = 1 << 20  # Test requests are small JSON documents; anything larger passes through unread

TESTED_CONNECTION_ID: ContextVar[str | None] = ContextVar("stripe_tested_connection_id", default=None)
"""The Stripe connection the current Test request tests: Airflow runs it under a random conn id."""


def _stripe_test_request(body: bytes) -> dict[str, Any] | None:
    """The Test request's JSON object if it tests a Stripe connection, else None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("conn_type") == CONN_TYPE else None


def tested_connection_id(body: bytes) -> str | None:
    """The ``connection_id`` a Test request for a Stripe connection names, if it is a plain id."""
    from airflow_provider_stripe.validation import CONN_ID_RE  # not at plugin load: workers load plugins too

    conn_id = (_stripe_test_request(body) or {}).get("connection_id")
    return conn_id if isinstance(conn_id, str) and CONN_ID_RE.fullmatch(conn_id) else None


def rewrite_test_body(body: bytes) -> bytes | None:
    """The body without ``port: 0`` if it tests a Stripe connection, else None (unchanged)."""
    data = _stripe_test_request(body)
    if data is None or data.get("port") not in (0, "0"):
        return None
    del data["port"]
    return json.dumps(data).encode()


class StripeConnectionTestPortFix:
    """Pure ASGI middleware (no body-consuming framework layers, so streaming is untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope.get("type") == "http"
            and scope.get("method") == "POST"
            and str(scope.get("path", "")).rstrip("/").endswith(TEST_PATH_SUFFIX)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if size > _MAX_BODY:
                head = {"type": "http.request", "body": b"".join(chunks), "more_body": more}
                await self.app(scope, _replay([head], receive), send)
                return
        body = b"".join(chunks)
        token = TESTED_CONNECTION_ID.set(tested_connection_id(body))
        try:
            new_body = rewrite_test_body(body)
            if new_body is not None:
                body = new_body
                headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                scope = {**scope, "headers": headers}
            await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}]), send)
        finally:
            TESTED_CONNECTION_ID.reset(token)


def _replay(messages: list[Message], downstream: Receive | None = None) -> Receive:
    """``messages``, then ``downstream``'s (or a disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await downstream() if downstream is not None else {"type": "http.disconnect"}

    return receive
