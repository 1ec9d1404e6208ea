"""The webhook endpoint against clients that trickle or abandon their body, on a real HTTP server.

The body is read before the signature can be checked, so an unauthenticated client must not be
able to hold connections open: the read has a deadline (408), and a client that disconnects
mid-body costs one log line, not a 500 with a traceback.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from airflow_provider_stripe.events import endpoint

DEADLINE_S = 0.5


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """The webhook app under uvicorn on 127.0.0.1, with a short body deadline; stopped after the test."""
    monkeypatch.setattr(endpoint, "BODY_READ_TIMEOUT_S", DEADLINE_S)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(endpoint.create_webhook_app(), log_level="info", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if uv.started:
            break
        time.sleep(0.02)
    assert uv.started, "uvicorn did not start within 4 s"
    yield sock.getsockname()
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _start_post(address: tuple[str, int], declared: int, sent: bytes) -> socket.socket:
    """A POST that declares ``declared`` body bytes and sends only ``sent``."""
    client = socket.create_connection(address, timeout=5)
    head = (
        f"POST /webhooks/stripe_default HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    client.sendall(head.encode() + sent)
    return client


def _status(client: socket.socket) -> int:
    answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split()[1])


def test_trickling_clients_get_408_at_the_deadline(server: tuple[str, int]) -> None:
    clients = [_start_post(server, declared=1000, sent=b'{"id": ') for _ in range(50)]
    started = time.monotonic()
    try:
        statuses = [_status(client) for client in clients]
    finally:
        for client in clients:
            client.close()
    elapsed = time.monotonic() - started
    assert statuses == [408] * 50
    assert elapsed < DEADLINE_S + 3, f"50 slow clients were held {elapsed:.1f} s"


def test_a_complete_body_is_still_read_and_judged(server: tuple[str, int]) -> None:
    body = b'{"id": "evt_1", "object": "event"}'
    client = _start_post(server, declared=len(body), sent=body)
    try:
        assert _status(client) == 400  # unsigned: the generic refusal, not a timeout
    finally:
        client.close()


def test_a_client_disconnecting_mid_body_is_one_log_line(
    server: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(5):
        _start_post(server, declared=1000, sent=b'{"id": ').close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum("disconnected" in r.getMessage() for r in caplog.records) < 5:
        time.sleep(0.05)
    disconnects = [r for r in caplog.records if "disconnected before sending its body" in r.getMessage()]
    assert len(disconnects) == 5
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in disconnects)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
