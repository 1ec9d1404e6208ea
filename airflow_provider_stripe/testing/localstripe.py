"""Run the real localstripe on 127.0.0.1, isolated per test session.

Why a subprocess: localstripe keeps its whole state in a module-global ``store``
and schedules webhooks on the running asyncio loop; a child process gives each
test session its own store and loop and can be killed at teardown. Its CLI is
not used because it binds ``::`` (all interfaces) and loads/dumps the store to
``/tmp/localstripe.pickle`` on every write, which would leak state between
parallel runs. Here the store's disk methods are patched to no-ops and the app
is served on a socket bound to ``127.0.0.1`` (port 0 by default; the child
prints the port it got, the parent reads it).

Quirks of localstripe 1.15.10, verified by calling it with
``stripe.StripeClient(api_key="sk_test_...", base_addresses={"api": url})``
(stripe 16.1) -- see ``tests/integration/test_servers.py`` for the executable
versions of the important ones:

Auth and headers
  * Any ``Authorization: Bearer sk_...`` key longer than 5 chars is accepted (no
    key -> 401 ``{"error": {"type": "invalid_request_error", "message":
    "Unauthorized"}}``). There is one global store: ``Stripe-Account`` is ignored
    (no connected-account scoping) and so is ``Stripe-Version``.
  * ``Idempotency-Key`` is ignored: the same key sent twice creates two objects
    (put ``fault_proxy`` in front to get Stripe's idempotency semantics).
  * Responses carry no ``Request-Id`` header.
  * Errors are ``{"error": {"type": "invalid_request_error", "message": ...}}``
    with no ``code`` -- even card declines are ``invalid_request_error`` (402,
    ``code: card_declined``; the SDK still raises ``CardError`` from the 402).
    Validation failures are a bare 400 ``"Bad request"``; unknown parameters a
    400 ``"Unexpected <name>"``; unknown ids 404 ``"Not Found"``. Some bad
    inputs crash it: 500 with a plain-text body (SDK: ``APIError``).
  * Form-encoded and JSON request bodies are both accepted.
  * Unknown routes (e.g. ``GET /v1/account``, ``/v1/accounts``) answer aiohttp's
    plain-text ``404: Not Found`` (not JSON; the SDK raises ``APIError``, not
    ``InvalidRequestError``). There is no account endpoint at all.

Payouts (``/v1/payouts``)
  * Create: ``amount`` (int > 0) and ``currency`` which must be exactly ``"eur"``
    (``usd`` or ``EUR`` -> 400 "Bad request"). Also accepted: ``description``,
    ``metadata``, ``statement_descriptor`` (<= 22 chars), ``destination`` (but
    ignored: a random ``ba_...`` is always set), ``method``
    (``standard``/``instant``), ``source_type``, and -- unlike Stripe --
    ``status`` in ``paid``/``pending``/``failed``; ``status=failed`` sets
    ``failure_code="could_not_process"`` and a ``failure_message``. Anything
    else (e.g. ``transfer_group``) -> 400 "Unexpected transfer_group".
  * The payout object has ``status="pending"`` by default, ``automatic=False``,
    a fake ``balance_transaction`` id, ``arrival_date`` = now + 2 days,
    ``type="bank_account"``; no balance is debited (balance never changes).
    A payout never moves on its own: it stays ``pending`` until updated.
  * Update ``POST /v1/payouts/{id}`` accepts any existing attribute, including
    ``status`` (``paid``/``failed``/anything, unvalidated) and ``failure_code``
    / ``failure_message``: that is how tests move a payout to paid/failed
    (unknown attributes -> 400; ``metadata`` keys are merged). It emits
    ``payout.updated`` only (``payout.paid``/``payout.failed`` are emitted
    only when ``status`` is given at create).
  * Cancel ``POST /v1/payouts/{id}/cancel`` works only while ``pending``
    (else 400 "Cannot cancel payout"); sets ``status="canceled"``.
  * Retrieve: unknown id -> 404. ``DELETE`` -> 405.
  * List accepts only ``limit`` (any int > 0, no cap at 100; 0 -> 400) and
    ``starting_after``; every other filter
    (``created[gt]``, ``created[gte]``, ``status``, ``ending_before``,
    ``arrival_date`` ...) -> 400 "Unexpected created" / "Unexpected status".
    Order is creation order (OLDEST first, Stripe is newest first);
    ``starting_after`` continues after that id in this oldest-first order (an
    unknown ``starting_after`` id silently restarts at the beginning).
    ``has_more`` is correct; the list also carries a non-Stripe ``total_count``.

Charges (``/v1/charges``)
  * Create needs ``amount`` (int >= 0), ``currency`` (any string) and either
    ``source`` or ``customer``. ``source`` must start with ``pm_``/``src_``/
    ``card_`` (``tok_visa`` -> 400); the Stripe test ids ``pm_card_visa``,
    ``pm_card_visa_chargeDeclined``, ``pm_card_chargeCustomerFail`` are
    materialised on the fly (a new PaymentMethod on every use), other unknown
    ``pm_...`` -> 404. Neither ``source`` nor ``customer`` -> 500 (plain text).
    ``pm_card_chargeCustomerFail`` is declined (402, ``code=card_declined``,
    error also carries ``charge``; the failed charge is stored with
    ``status="failed"``); ``pm_card_visa_chargeDeclined`` is NOT declined on
    charge (localstripe only declines it on attach).
    Also accepted: ``description``, ``metadata``, ``capture``,
    ``statement_descriptor``; ``payment_method`` is NOT (400 "Unexpected").
  * ``capture=false`` gives ``status="succeeded", captured=False``;
    ``POST /v1/charges/{id}/capture`` takes an optional ``amount`` (partial
    capture works: the remainder becomes a Refund, so ``amount_refunded`` is the
    uncaptured part); capturing twice -> 400.
  * List: ``customer``, ``limit``, ``starting_after``, and ``created`` only as
    ``created[gt]`` (``created[gte]``/``lt``/``lte`` or a bare ``created=`` ->
    500 JSON "Not implemented"; timestamps must be > 1500000000 else 400).
    Any other filter (e.g. ``status``) -> 500 plain-text crash, not 400.
    Oldest first. Charges (create/capture/refund) emit no events.

Refunds (``/v1/refunds``)
  * Create accepts ``charge`` or ``payment_intent``, ``amount`` (partial ok;
    default full) and ``metadata`` only: ``reason`` -> 400 "Unexpected reason".
    Over-refunding is not checked (a 5000 refund of a 1000 charge succeeds).
    Refunds are always ``status="succeeded"``; ``charge.amount_refunded`` and
    ``charge.refunded`` are computed; the charge's ``refunds`` is an embedded
    list object. No ``charge.refunded`` event.

Events (``/v1/events``)
  * Filters: ``type`` (exact match only, no ``*`` wildcard), ``created`` as a
    dict with ``gt``/``gte``/``lt``/``lte`` (bare ``created=`` -> 400),
    ``limit``, ``starting_after``. ``types`` and ``ending_before`` -> 400
    "Unexpected ...". Order: oldest first (Stripe: newest first).
  * Events are only emitted for a few resources: ``payout.created``,
    ``payout.updated``, ``payout.canceled``, ``payout.paid``/``failed`` (status
    given at create), customers, invoices, payment intents, products, plans,
    subscriptions, and ``balance.available`` -- the latter the first time
    ``GET /v1/balance`` is called after a flush. ``GET /v1/events/{id}``
    works. Event keys: ``id, object, type, created, livemode, api_version,
    data`` (no ``request``/``pending_webhooks``); ``api_version`` is
    ``2017-08-15``; ``data.object`` is a snapshot. ``created`` has 1 s
    resolution, ties keep insertion order.

Balance (``GET /v1/balance``)
  * Shape differs from Stripe: no ``object`` field, and ``available`` /
    ``pending`` are single objects, not lists:
    ``{"livemode": false, "available": {"amount": 2000, "currency": "eur",
    "source_types": {"card": 2000}}, "pending": {"amount": 0, ...}}``.
    It never changes (charges/payouts do not move it).

Misc
  * ``DELETE /_config/data`` flushes the store (registered webhooks survive);
    ``POST /_config/webhooks/{id}`` with ``url``, ``secret``, ``events[]``
    registers a webhook that receives signed events ~1 s after they happen
    (``Stripe-Signature: t=...,v1=...``, HMAC-SHA256 of ``"{t}.{payload}"``).
  * Object ids are random (``po_`` + 14 chars); ``created`` is ``int(time())``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence

import requests

TEST_API_KEY = "sk_test_localstripe"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
_PORT_PREFIX = "LOCALSTRIPE_PORT="


def disable_persistence() -> None:
    """Make localstripe's store purely in-memory (no /tmp/localstripe.pickle)."""
    from localstripe import resources

    def _no_op(self: object) -> None:
        return None

    resources.Store.try_load_from_disk = _no_op
    resources.Store.dump_to_disk = _no_op


def _exit_when_stdin_closes() -> None:
    """Die with the parent: it holds our stdin, EOF means it is gone."""
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


def serve(port: int = 0, *, exit_on_stdin_eof: bool = False) -> None:
    """Serve localstripe on 127.0.0.1:port (0 = any free port) until killed.

    Prints ``LOCALSTRIPE_PORT=<port>`` once the socket listens.
    """
    disable_persistence()
    from aiohttp import web
    from localstripe.server import app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    print(f"{_PORT_PREFIX}{sock.getsockname()[1]}", flush=True)
    if exit_on_stdin_eof:
        threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    web.run_app(app, sock=sock, print=None, access_log=None, shutdown_timeout=1.0)


def _read_port(proc: subprocess.Popen[str], timeout: float) -> int:
    """Read the port line printed by the child, waiting at most ``timeout`` s."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF, i.e. when the child exits
            lines.put(line)

    threading.Thread(target=pump, daemon=True, name="localstripe-stdout").start()
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.startswith(_PORT_PREFIX):
            return int(line[len(_PORT_PREFIX) :])
    raise RuntimeError("localstripe did not report its port")


def _wait_ready(url: str, timeout: float) -> None:
    """Poll an authenticated list call until localstripe answers 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            resp = requests.get(f"{url}/v1/payouts", params={"limit": 1}, auth=(TEST_API_KEY, ""), timeout=2)
            if resp.status_code == 200:
                return
            last = resp.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"localstripe at {url} not ready after {timeout}s: {last!r}")


@contextlib.contextmanager
def run_localstripe(*, ready_timeout: float = READY_TIMEOUT_S) -> Iterator[str]:
    """Start localstripe in a child process; yield ``http://127.0.0.1:PORT``.

    The child is terminated (then killed) on exit. Startup failures raise with
    the child's stderr attached.
    """
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryFile(mode="w+", prefix="localstripe-stderr-") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_stripe.testing.localstripe", "--port", "0", "--exit-on-stdin-eof"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            try:
                port = _read_port(proc, ready_timeout)
                url = f"http://127.0.0.1:{port}"
                _wait_ready(url, ready_timeout)
            except RuntimeError as exc:
                stderr.seek(0)
                raise RuntimeError(f"{exc}; exit code {proc.poll()}; stderr:\n{stderr.read()[-4000:]}") from None
            yield url
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Terminate the child, escalating to kill after STOP_TIMEOUT_S."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    if proc.stdout is not None:
        proc.stdout.close()


def flush_localstripe(url: str) -> None:
    """Delete every object in localstripe's store (``DELETE /_config/data``)."""
    requests.delete(f"{url}/_config/data", timeout=5).raise_for_status()


def register_webhook(url: str, webhook_id: str, target_url: str, secret: str, events: Sequence[str] = ()) -> None:
    """Make localstripe POST signed events to ``target_url`` (all events if none given)."""
    data: list[tuple[str, str]] = [("url", target_url), ("secret", secret)]
    data += [("events[]", e) for e in events]
    requests.post(f"{url}/_config/webhooks/{webhook_id}", data=data, timeout=5).raise_for_status()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m airflow_provider_stripe.testing.localstripe [--port N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (parent died)")
    args = parser.parse_args(argv)
    serve(args.port, exit_on_stdin_eof=args.exit_on_stdin_eof)


if __name__ == "__main__":
    main()
