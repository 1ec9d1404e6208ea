"""Run the real localstripe, behind the Stripe-faithful front, on 127.0.0.1.

``python -m airflow_provider_stripe.testing.localstripe`` serves both until Ctrl-C and
prints the ``base_url`` to put in a ``stripe`` connection (``--settle`` also plays the
bank: see :mod:`airflow_provider_stripe.testing.settlement`). Tests and the demo use
:func:`run_localstripe`, which does the same in a child process. Needs the ``[local]``
extra (``pip install "airflow-provider-stripe[local]"``).

Clients always talk to the front (:mod:`airflow_provider_stripe.testing.front`), which
answers Stripe's list semantics, ``created`` filters and ``/v1/account`` and forwards
everything else to localstripe; localstripe itself listens on another loopback port.

Why a subprocess: localstripe keeps its whole state in a module-global ``store``
and schedules webhooks on the running asyncio loop; a child process gives each
test session its own store and loop and can be killed at teardown. Its CLI is
not used because it binds ``::`` (all interfaces) and loads/dumps the store to
``/tmp/localstripe.pickle`` on every write, which would leak state between
parallel runs. Here the store's disk methods are patched to no-ops and the app
is served on a socket bound to ``127.0.0.1`` (port 0 by default; the child
prints the port it got, the parent reads it).

Quirks of localstripe 1.15.10 (behind the front, the list ones are gone), verified by calling it with
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
import asyncio
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
from typing import NamedTuple

import requests

TEST_API_KEY = "sk_test_localstripe"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
DEFAULT_CLI_PORT = 8420
_URLS_PREFIX = "LOCALSTRIPE_URLS="


class LocalStripe(NamedTuple):
    """A running local Stripe: ``url`` is the front (what connections use), ``upstream_url`` localstripe itself."""

    url: str
    upstream_url: str


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


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


async def _serve(port: int, settle_delay: float | None) -> None:
    from aiohttp import web
    from localstripe.server import app as localstripe_app

    from airflow_provider_stripe.connection.config import ALLOWED_BASE_URLS_ENV
    from airflow_provider_stripe.testing.front import StripeFront

    upstream_sock, front_sock = _listen(0), _listen(port)
    upstream_url = f"http://127.0.0.1:{upstream_sock.getsockname()[1]}"
    servers = LocalStripe(f"http://127.0.0.1:{front_sock.getsockname()[1]}", upstream_url)
    runners = [
        web.AppRunner(localstripe_app, access_log=None),
        web.AppRunner(StripeFront(upstream_url).app(), access_log=None),
    ]
    for runner, sock in zip(runners, (upstream_sock, front_sock), strict=True):
        await runner.setup()
        await web.SockSite(runner, sock, shutdown_timeout=1.0).start()
    print(f"{_URLS_PREFIX}{servers.url} {servers.upstream_url}", flush=True)
    print(
        f"Local Stripe on {servers.url} (localstripe behind a Stripe-faithful front; payouts in eur only).\n"
        f"Connection: base_url={servers.url}, api_key=any sk_test_ key (e.g. {TEST_API_KEY}); Airflow sends the "
        f"key there only once allowed: {ALLOWED_BASE_URLS_ENV}={servers.url}. Ctrl-C stops it.",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        if settle_delay is not None:
            from airflow_provider_stripe.testing.settlement import SettlementSimulator

            stack.enter_context(SettlementSimulator(servers.url, TEST_API_KEY, delay=settle_delay))
            print(f"Settlement simulator on: pending payouts become paid after {settle_delay:g}s.", file=sys.stderr)
        try:
            await asyncio.Event().wait()  # until the process is stopped
        finally:
            for runner in reversed(runners):
                await runner.cleanup()


def serve(port: int = 0, *, exit_on_stdin_eof: bool = False, settle_delay: float | None = None) -> None:
    """Serve localstripe and its front on 127.0.0.1 (``port`` 0 = any free port) until killed.

    Prints ``LOCALSTRIPE_URLS=<front url> <localstripe url>`` once both listen.
    """
    disable_persistence()
    if exit_on_stdin_eof:
        threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(port, settle_delay))


def _read_urls(proc: subprocess.Popen[str], timeout: float) -> LocalStripe:
    """Read the URLs line printed by the child, waiting at most ``timeout`` s."""
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
        if line.startswith(_URLS_PREFIX):
            front, upstream = line[len(_URLS_PREFIX) :].split()
            return LocalStripe(front, upstream)
    raise RuntimeError("localstripe did not report its URLs")


def _wait_ready(url: str, timeout: float) -> None:
    """Poll an authenticated list call until the server answers 200."""
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
def run_local_stripe(*, ready_timeout: float = READY_TIMEOUT_S) -> Iterator[LocalStripe]:
    """Start localstripe and its front in a child process; yield their URLs.

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
                servers = _read_urls(proc, ready_timeout)
                _wait_ready(servers.url, ready_timeout)
            except RuntimeError as exc:
                stderr.seek(0)
                raise RuntimeError(f"{exc}; exit code {proc.poll()}; stderr:\n{stderr.read()[-4000:]}") from None
            yield servers
        finally:
            _stop(proc)


@contextlib.contextmanager
def run_localstripe(*, ready_timeout: float = READY_TIMEOUT_S) -> Iterator[str]:
    """:func:`run_local_stripe`, yielding only the URL clients use: ``http://127.0.0.1:PORT`` (the front)."""
    with run_local_stripe(ready_timeout=ready_timeout) as servers:
        yield servers.url


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
    """Delete every object in localstripe's store (``DELETE /_config/data``; through the front, also its log)."""
    requests.delete(f"{url}/_config/data", timeout=5).raise_for_status()


def register_webhook(url: str, webhook_id: str, target_url: str, secret: str, events: Sequence[str] = ()) -> None:
    """Make localstripe POST signed events to ``target_url`` (all events if none given)."""
    data: list[tuple[str, str]] = [("url", target_url), ("secret", secret)]
    data += [("events[]", e) for e in events]
    requests.post(f"{url}/_config/webhooks/{webhook_id}", data=data, timeout=5).raise_for_status()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m airflow_provider_stripe.testing.localstripe [--port N] [--settle [SECONDS]]``."""
    parser = argparse.ArgumentParser(
        description="Serve localstripe behind a Stripe-faithful front on 127.0.0.1 and print the base_url."
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_CLI_PORT,
        help=f"front port on 127.0.0.1 (default {DEFAULT_CLI_PORT}; 0 = any)",
    )
    parser.add_argument(
        "--settle",
        nargs="?",
        type=float,
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="play the bank: mark each pending payout paid SECONDS after it appears (default 2)",
    )
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (parent died)")
    args = parser.parse_args(argv)
    serve(args.port, exit_on_stdin_eof=args.exit_on_stdin_eof, settle_delay=args.settle)


if __name__ == "__main__":
    main()
