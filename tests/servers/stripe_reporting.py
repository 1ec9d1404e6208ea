"""Stripe endpoints localstripe lacks, for the warehouse features: routes of the Stripe front.

localstripe creates every payout as a *manual* one, cannot list balance transactions by
payout and has no Reporting API or files. Real Stripe creates *automatic* payouts itself
and itemizes them: ``GET /v1/balance_transactions?payout=po_...`` lists every balance
transaction the payout settled, including the payout's own (``type: payout``, negative
amount); for a manual payout Stripe refuses the filter with a 400 naming ``payout``.

These are routes of the package's Stripe front
(:class:`airflow_provider_stripe.testing.front.StripeFront`, ``with_routes``), so every
list here is answered by the front's one list implementation (newest first, ``limit``,
cursors, ``has_more``, ``created`` ranges) and everything else is the front's as users
run it:

* :class:`PayoutLedger` -- automatic payouts and their balance transactions, seeded by the
  tests (:meth:`PayoutLedger.add_automatic_payout`):

  * ``GET /v1/balance_transactions?payout=po_...`` (``expand[]=data.source``) -- ledger
    payouts; any other payout id is looked up in localstripe: a manual payout gets Stripe's
    400, an unknown one a 404; without ``payout``, the front's list;
  * ``GET /v1/payouts/{id}`` -- ledger payouts, else localstripe's;
  * ``GET /v1/payouts`` -- localstripe's payouts and the ledger's, one list.
  * :meth:`PayoutLedger.fail_payout` -- Stripe failing a paid payout: ``failed`` with a
    ``failure_code`` and ``failure_message``, and a ``payout_failure`` balance transaction
    (its ``failure_balance_transaction``) returning the amount, listed without ``payout``.

* :class:`Reporting` -- report types (``data_available_end``), report runs (``pending`` for a
  while, then ``succeeded`` or ``failed``), file metadata (``GET /v1/files/{id}``), and the
  file contents, served by a separate files host (:func:`run_files_host`, as Stripe serves
  them on files.stripe.com) to which the front passes ``/v1/files/{id}/contents`` (a
  connection's one ``base_url`` stands in for all of Stripe's hosts).

:func:`run_ledger_front` serves that front in this process (so tests seed it directly)
before localstripe, behind the fault proxy: faults, idempotency and the request records
(``records``, ``stats``) are the proxy's, as in every other fault test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from airflow_provider_stripe.testing.front import (
    ListQueryError,
    ListSpec,
    OrderedList,
    Route,
    StripeFront,
    list_endpoint,
    list_page,
    list_spec,
    stripe_error,
    upstream_error,
    with_routes,
)
from tests.servers.fault_proxy import FaultPlan, FaultProxy, _ProxyHTTPServer
from tests.servers.stub_stripe import (
    QuietHTTPServer,
    api_key_from_headers,
    new_request_id,
    serve_in_thread,
    write_response,
)

Json = dict[str, Any]

MANUAL_PAYOUT_MESSAGE = "Balance transaction history can only be filtered on automatic transfers, not manual."
"""Stripe's answer to ``payout=`` naming a manual payout (HTTP 400, param ``payout``)."""

_ids = itertools.count(1)
_EXPAND = re.compile(r"expand(\[\d*\])?")
_TRANSACTIONS = ListSpec("balance_transaction")
_EXPANDABLE = ("data.source",)


@dataclass
class PayoutLedger:
    """Automatic payouts and their itemization (balance transactions), Stripe-shaped."""

    payouts: dict[str, Json] = field(default_factory=dict)
    transactions: dict[str, list[Json]] = field(default_factory=dict)
    """Per payout, oldest first (the front lists them newest first)."""
    reversals: list[Json] = field(default_factory=list)
    """``payout_failure`` transactions of failed payouts (they join ``GET /v1/balance_transactions``)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- seeding (what Stripe does on its own when it pays out automatically) ---------

    def add_automatic_payout(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        currency: str = "eur",
        arrival_date: int | None = None,
        status: str = "paid",
    ) -> Json:
        """An automatic payout settling ``items``; returns the payout.

        Each item: ``type`` (``charge``, ``refund``, ``adjustment``...), ``amount`` (minor
        units, negative for debits), optional ``fee``, ``source`` (an id; a real upstream
        object's id makes ``expand`` work), ``reporting_category``, ``description``.
        The payout's own balance transaction (``type: payout``) is added, as Stripe does.
        """
        now = int(time.time())
        n = next(_ids)
        payout_id = f"po_ledger{n:06d}{now}"
        txns: list[Json] = []
        for i, item in enumerate(items):
            amount, fee = int(item["amount"]), int(item.get("fee", 0))
            kind = str(item.get("type", "charge"))
            txns.append(
                _transaction(
                    f"txn_ledger{n:06d}x{i:06d}",
                    amount=amount,
                    fee=fee,
                    currency=currency,
                    created=now - len(items) + i,
                    kind=kind,
                    reporting_category=str(item.get("reporting_category", kind)),
                    source=item.get("source"),
                    description=item.get("description"),
                )
            )
        total = sum(t["net"] for t in txns)
        payout_txn = _transaction(
            f"txn_ledger{n:06d}payout",
            amount=-total,
            fee=0,
            currency=currency,
            created=now,
            kind="payout",
            reporting_category="payout",
            source=payout_id,
            description="STRIPE PAYOUT",
        )
        payout: Json = {
            "id": payout_id,
            "object": "payout",
            "amount": total,
            "arrival_date": now if arrival_date is None else arrival_date,
            "automatic": True,
            "balance_transaction": payout_txn["id"],
            "created": now,
            "currency": currency,
            "description": "STRIPE PAYOUT",
            "destination": "ba_ledger",
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "method": "standard",
            "original_payout": None,
            "reconciliation_status": "completed",
            "reversed_by": None,
            "source_type": "card",
            "statement_descriptor": None,
            "status": status,
            "type": "bank_account",
        }
        with self._lock:
            self.payouts[payout_id] = payout
            self.transactions[payout_id] = [*txns, payout_txn]
        return payout

    def fail_payout(self, payout_id: str, failure_code: str, failure_message: str) -> Json:
        """Stripe failing a (paid) payout days later: its status flips and the amount comes back."""
        with self._lock:
            payout = self.payouts[payout_id]
            reversal = _transaction(
                f"txn_failure_{payout_id}",
                amount=payout["amount"],
                fee=0,
                currency=payout["currency"],
                created=int(time.time()),
                kind="payout_failure",
                reporting_category="payout_reversal",
                source=payout_id,
                description="STRIPE PAYOUT FAILURE",
            )
            payout.update(
                status="failed",
                failure_code=failure_code,
                failure_message=failure_message,
                failure_balance_transaction=reversal["id"],
            )
            self.reversals.append(reversal)
            return payout

    def held_reversals(self) -> list[Json]:
        with self._lock:
            return list(self.reversals)

    def held_payouts(self) -> list[Json]:
        """The ledger's payouts, oldest first (they join localstripe's in ``GET /v1/payouts``)."""
        with self._lock:
            return list(self.payouts.values())

    # -- routes of the front ----------------------------------------------------------

    def routes(self) -> tuple[Route, ...]:
        """The front's routes for payout itemization (see module doc)."""
        transactions = list_endpoint(list_spec("balance_transactions"), held=self.held_reversals)

        async def balance_transactions(front: StripeFront, request: web.Request) -> web.StreamResponse:
            if "payout" not in request.query:
                return await transactions(front, request)
            return await self._itemize(front, request)

        async def payout(front: StripeFront, request: web.Request) -> web.StreamResponse:
            with self._lock:
                found = self.payouts.get(request.match_info["id"])
            return web.json_response(found) if found is not None else await front.forward(request)

        return (
            Route("GET", "/v1/balance_transactions", balance_transactions),
            Route("GET", "/v1/payouts", list_endpoint(list_spec("payouts"), held=self.held_payouts)),
            Route("GET", "/v1/payouts/{id}", payout),
        )

    async def _itemize(self, front: StripeFront, request: web.Request) -> web.StreamResponse:
        payout_id = request.query["payout"]
        with self._lock:
            txns = self.transactions.get(payout_id)
        if txns is None:
            status, body = await front.upstream_json(request, f"/v1/payouts/{payout_id}")
            if status == 404:
                return stripe_error(404, f"No such payout: '{payout_id}'", code="resource_missing", param="payout")
            if status != 200:
                return upstream_error(status, body)
            return stripe_error(400, MANUAL_PAYOUT_MESSAGE, param="payout")
        expand = [v for k, v in request.query.items() if _EXPAND.fullmatch(k)]
        rest = {k: v for k, v in request.query.items() if k != "payout" and not _EXPAND.fullmatch(k)}
        try:
            query = _TRANSACTIONS.parse(rest)
        except ListQueryError as exc:
            return stripe_error(400, str(exc), param=exc.param)
        unknown = [e for e in expand if e not in _EXPANDABLE] + [k for k, _ in query.passthrough]
        if unknown:
            return stripe_error(400, f"Received unknown parameter or expansion: {unknown[0]}", param=unknown[0])

        async def expand_sources(data: list[Json]) -> list[Json]:
            return [await self._expand_source(front, request, t) for t in data] if expand else data

        return await list_page(request, OrderedList.newest_first(txns), query, "balance_transaction", expand_sources)

    async def _expand_source(self, front: StripeFront, request: web.Request, txn: Json) -> Json:
        source = txn.get("source")
        if not isinstance(source, str):
            return txn
        with self._lock:
            held = self.payouts.get(source)
        if held is not None:
            return {**txn, "source": held}
        status, body = await front.upstream_json(request, f"/v1/{_collection(source)}/{source}")
        return {**txn, "source": body if status == 200 else source}


def _collection(object_id: str) -> str:
    prefix = object_id.split("_", 1)[0]
    return {"ch": "charges", "re": "refunds", "po": "payouts", "dp": "disputes", "tr": "transfers"}.get(
        prefix, "charges"
    )


def _transaction(
    txn_id: str,
    *,
    amount: int,
    fee: int,
    currency: str,
    created: int,
    kind: str,
    reporting_category: str,
    source: Any,
    description: Any,
) -> Json:
    fee_details = (
        [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else []
    )
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created,
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": reporting_category,
        "source": source,
        "status": "available",
        "type": kind,
    }


REPORT_COLUMNS = ("balance_transaction_id", "created_utc", "reporting_category", "currency", "gross", "fee", "net")


def report_lines(rows: int, columns: Sequence[str] = REPORT_COLUMNS) -> Iterator[bytes]:
    """A report's CSV, line by line (deterministic: the same ``rows`` give the same bytes)."""
    yield (",".join(columns) + "\n").encode()
    values = {
        "balance_transaction_id": lambda i: f"txn_report{i:09d}",
        "created_utc": lambda i: f"2026-01-01 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
        "reporting_category": lambda i: ("charge", "refund", "fee")[i % 3],
        "currency": lambda i: "eur",
        "gross": lambda i: f"{(i % 997) + 1}.00",
        "fee": lambda i: "0.30",
        "net": lambda i: f"{(i % 997) + 0.70:.2f}",
    }
    for i in range(rows):
        yield (",".join(values.get(c, lambda i: "")(i) for c in columns) + "\n").encode()


@dataclass
class Reporting:
    """Stripe's Reporting API and file metadata: report types, report runs, files.

    A run is ``pending`` for its first ``pending_polls`` retrievals and while ``held`` is set
    (a test releases it when it has seen what it waits for), then ``succeeded`` (its
    ``result`` a ``finance_report_run`` File whose contents the files host serves) or
    ``failed`` (``error`` set), as ``outcome`` said when the run was created.
    """

    report_types: dict[str, Json] = field(default_factory=dict)
    runs: dict[str, Json] = field(default_factory=dict)
    files: dict[str, Json] = field(default_factory=dict)
    contents: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    pending_polls: int = 2
    held: bool = False
    outcome: str = "succeeded"
    rows: int = 100
    failure_message: str = "An unexpected error occurred while computing the report."
    _polls_left: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_report_type(self, report_id: str, *, data_available_start: int, data_available_end: int) -> Json:
        """Register a report type with the data window Stripe has computed."""
        report_type = {
            "id": report_id,
            "object": "reporting.report_type",
            "data_available_start": data_available_start,
            "data_available_end": data_available_end,
            "default_columns": list(REPORT_COLUMNS),
            "livemode": False,
            "name": report_id,
            "updated": data_available_end,
            "version": int(report_id.rsplit(".", 1)[-1]) if report_id[-1].isdigit() else 1,
        }
        self.report_types[report_id] = report_type
        return report_type

    def routes(self, files_url: str) -> tuple[Route, ...]:
        """The front's reporting and file routes; contents are fetched from the files host at ``files_url``."""

        async def report_type(front: StripeFront, request: web.Request) -> web.StreamResponse:
            return _found(self.report_types, request.match_info["id"], "report type", "id")

        async def create_run(front: StripeFront, request: web.Request) -> web.StreamResponse:
            form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
            return self._create_run(form)

        async def retrieve_run(front: StripeFront, request: web.Request) -> web.StreamResponse:
            return self._retrieve_run(request.match_info["id"])

        async def file(front: StripeFront, request: web.Request) -> web.StreamResponse:
            return _found(self.files, request.match_info["id"], "file upload", "file")

        async def contents(front: StripeFront, request: web.Request) -> web.StreamResponse:
            """Streamed from the files host, chunk by chunk."""
            headers = {"Authorization": request.headers.get("Authorization", "")}
            async with front.session.get(f"{files_url}{request.rel_url}", headers=headers) as upstream:
                response = web.StreamResponse(status=upstream.status)
                response.content_type = upstream.content_type
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    await response.write(chunk)
                await response.write_eof()
                return response

        return (
            Route("GET", "/v1/reporting/report_types/{id}", report_type),
            Route("POST", "/v1/reporting/report_runs", create_run),
            Route("GET", "/v1/reporting/report_runs/{id}", retrieve_run),
            Route("GET", "/v1/files/{id}", file),
            Route("GET", "/v1/files/{id}/contents", contents),
        )

    def _create_run(self, form: dict[str, str]) -> web.Response:
        report_id = form.get("report_type", "")
        report_type = self.report_types.get(report_id)
        if report_type is None:
            return stripe_error(400, f"No such report type: '{report_id}'", param="report_type")
        params: Json = {}
        columns = [v for k, v in sorted(form.items()) if re.fullmatch(r"parameters\[columns\]\[\d+\]", k)]
        for key, value in form.items():
            match = re.fullmatch(r"parameters\[(\w+)\]", key)
            if match:
                name = match.group(1)
                params[name] = int(value) if name.startswith("interval_") and value.isdigit() else value
        if columns:
            params["columns"] = columns
        for bound in ("interval_start", "interval_end"):
            if bound not in params and "payout" not in params:
                return stripe_error(400, f"Missing required param: parameters[{bound}].", param=f"parameters[{bound}]")
        end = params.get("interval_end")
        if isinstance(end, int) and end > report_type["data_available_end"]:
            return stripe_error(
                400,
                f"parameters[interval_end] must be less than or equal to the data_available_end of "
                f"{report_id} ({report_type['data_available_end']}).",
                param="parameters[interval_end]",
            )
        n = next(_ids)
        run: Json = {
            "id": f"frr_report{n:08d}",
            "object": "reporting.report_run",
            "created": int(time.time()),
            "error": None,
            "livemode": False,
            "parameters": params,
            "report_type": report_id,
            "result": None,
            "status": "pending",
            "succeeded_at": None,
        }
        with self._lock:
            self.runs[run["id"]] = run
            self._polls_left[run["id"]] = self.pending_polls
            run["_outcome"] = (self.outcome, self.rows, tuple(columns or REPORT_COLUMNS))
        return web.json_response(_public(run))

    def _retrieve_run(self, run_id: str) -> web.Response:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                return stripe_error(404, f"No such report run: '{run_id}'", code="resource_missing", param="id")
            if run["status"] == "pending":
                if self._polls_left[run_id] > 0:
                    self._polls_left[run_id] -= 1
                elif not self.held:
                    self._finish(run)
            return web.json_response(_public(run))

    def _finish(self, run: Json) -> None:
        outcome, rows, columns = run["_outcome"]
        if outcome == "failed":
            run.update(status="failed", error=self.failure_message)
            return
        now = int(time.time())
        file_id = f"file_report{next(_ids):08d}"
        size = sum(len(line) for line in report_lines(rows, columns))
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "created": now,
            "expires_at": now + 365 * 86_400,
            "filename": f"{file_id}.csv",
            "purpose": "finance_report_run",
            "size": size,
            "title": f"FinanceReportRun {run['id']}",
            "type": "csv",
            "url": f"https://files.stripe.com/v1/files/{file_id}/contents",
        }
        self.contents[file_id] = (rows, columns)
        run.update(status="succeeded", succeeded_at=now, result=self.files[file_id])


def _found(objects: Mapping[str, Json], object_id: str, what: str, param: str) -> web.Response:
    """The object, or Stripe's 404 for it (``No such file upload: 'file_...'``)."""
    found = objects.get(object_id)
    if found is None:
        return stripe_error(404, f"No such {what}: '{object_id}'", code="resource_missing", param=param)
    return web.json_response(found)


def _public(run: Json) -> Json:
    return {k: v for k, v in run.items() if not k.startswith("_")}


class _FilesHandler(BaseHTTPRequestHandler):
    """Stripe's files host: ``GET /v1/files/{id}/contents``, authenticated, streamed."""

    server: _FilesHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        reporting = self.server.reporting
        self.server.requests.append((self.path, self.headers.get("Authorization")))
        match = re.fullmatch(r"/v1/files/(file_\w+)/contents", urlsplit(self.path).path)
        key = api_key_from_headers(self.headers) or ""
        if not key.startswith(("sk_test_", "rk_test_")):
            write_response(
                self, 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
            )
            return
        spec = reporting.contents.get(match.group(1)) if match else None
        if spec is None:
            error = {"type": "invalid_request_error", "message": "No such file upload", "code": "resource_missing"}
            write_response(self, 404, {"error": error})
            return
        rows, columns = spec
        size = sum(len(line) for line in report_lines(rows, columns))
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(size))
        self.send_header("Request-Id", new_request_id())
        self.end_headers()
        for line in report_lines(rows, columns):  # streamed: never the whole file in memory here either
            self.wfile.write(line)


class _FilesHTTPServer(QuietHTTPServer):
    def __init__(self, reporting: Reporting) -> None:
        super().__init__(("127.0.0.1", 0), _FilesHandler)
        self.reporting = reporting
        self.requests: list[tuple[str, str | None]] = []


class LedgerFront(FaultProxy):
    """The fault proxy before a Stripe front with the ledger's and reporting's routes (see module doc)."""

    def __init__(
        self, front_url: str, ledger: PayoutLedger, reporting: Reporting, files_host: _FilesHTTPServer, plan: FaultPlan
    ) -> None:
        super().__init__(front_url, plan, seed=0)
        self.ledger = ledger
        self.reporting = reporting
        self.files_host = files_host


@contextlib.contextmanager
def run_files_host(reporting: Reporting) -> Iterator[_FilesHTTPServer]:
    """Serve the files host for ``reporting`` on 127.0.0.1 (free port)."""
    httpd = _FilesHTTPServer(reporting)
    with serve_in_thread(httpd, "files-host", threading.Event()):
        yield httpd


@contextlib.contextmanager
def serve_front(front: StripeFront, name: str = "stripe-front") -> Iterator[str]:
    """Serve ``front`` on 127.0.0.1 (free port) from an event loop in a daemon thread; yield its URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(front.app(), access_log=None, shutdown_timeout=1.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, sock).start())
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


@contextlib.contextmanager
def run_ledger_front(localstripe_url: str, faults: FaultPlan | None = None) -> Iterator[LedgerFront]:
    """Serve the ledger front on 127.0.0.1 (free ports) before localstripe itself; yield its proxy.

    :param localstripe_url: localstripe *itself* (``LocalStripe.upstream_url``): this is a
        Stripe front of its own, with the package front's routes and the ledger's.
    :param faults: faults the proxy injects.
    """
    ledger, reporting = PayoutLedger(), Reporting()
    with run_files_host(reporting) as files_host:
        files_url = f"http://127.0.0.1:{files_host.server_address[1]}"
        front = StripeFront(localstripe_url, routes=with_routes(*ledger.routes(), *reporting.routes(files_url)))
        with serve_front(front, "ledger-front") as front_url:
            proxy = LedgerFront(front_url, ledger, reporting, files_host, faults or FaultPlan())
            httpd = _ProxyHTTPServer(proxy)
            proxy._httpd = httpd
            with serve_in_thread(httpd, "ledger-front-proxy", proxy._stop):
                yield proxy
