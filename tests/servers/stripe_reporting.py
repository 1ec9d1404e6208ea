"""Stripe endpoints localstripe lacks, for the warehouse features: payout itemization.

localstripe creates every payout as a *manual* one and cannot list balance transactions
by payout. Real Stripe creates *automatic* payouts itself and itemizes them:
``GET /v1/balance_transactions?payout=po_...`` lists every balance transaction the
payout settled, including the payout's own (``type: payout``, negative amount). For a
manual payout Stripe refuses the filter with a 400 naming the ``payout`` parameter.

:class:`PayoutLedger` holds automatic payouts and their balance transactions, seeded
by the tests (:meth:`PayoutLedger.add_automatic_payout`), and answers, in Stripe's
documented shapes and paging (newest first, ``limit`` 1-100, ``starting_after`` /
``ending_before``, ``has_more``, ``expand[]=data.source``):

* ``GET /v1/balance_transactions?payout=po_...`` -- ledger payouts; any other payout id
  is looked up upstream: a manual payout gets Stripe's 400, an unknown one a 404;
* ``GET /v1/payouts/{id}`` -- ledger payouts (others: not handled);
* ``GET /v1/payouts`` with ``arrival_date[gt|gte|lt|lte]`` -- the upstream's payouts
  and the ledger's, filtered by arrival date (localstripe knows no such filter);
* any ``GET /v1/<collection>`` with ``created[gt|gte|lt|lte]`` filters, and ``/v1/events``
  with a ``type`` wildcard (``charge.*``): localstripe supports neither. This part is a
  stand-in for the shared front's ``created`` filters: drop it when wiring into that front.

The logic is :meth:`PayoutLedger.route`: ``(method, path, query) -> (status, body)`` or
``None`` (not handled: forward upstream), so a front server's route table can call it.
:func:`run_ledger_front` serves it now, in front of localstripe, by subclassing the
fault proxy (whose recording, faults and forwarding it keeps).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from requests.structures import CaseInsensitiveDict

from tests.servers.fault_proxy import FaultPlan, FaultProxy, _ProxyHTTPServer
from tests.servers.localstripe_server import TEST_API_KEY
from tests.servers.stub_stripe import (
    QuietHTTPServer,
    api_key_from_headers,
    new_request_id,
    serve_in_thread,
    write_response,
)

Json = dict[str, Any]
Answer = tuple[int, Json]
Fetch = Callable[[str], Answer]
"""``GET`` a path (with query) from the upstream Stripe; returns ``(status, json body)``."""

MANUAL_PAYOUT_MESSAGE = "Balance transaction history can only be filtered on automatic transfers, not manual."
"""Stripe's answer to ``payout=`` naming a manual payout (HTTP 400, param ``payout``)."""

_ids = itertools.count(1)


def stripe_error(status: int, message: str, *, code: str | None = None, param: str | None = None) -> Answer:
    """A Stripe ``invalid_request_error`` answer."""
    error: Json = {"type": "invalid_request_error", "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return status, {"error": error}


def parse_query(query: str) -> tuple[dict[str, str], list[str]]:
    """Flat params (``arrival_date[gte]`` kept as is) and the ``expand`` list (``expand[]``/``expand[0]``)."""
    params: dict[str, str] = {}
    expand: list[str] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "expand" or re.fullmatch(r"expand\[\d*\]", name):
            expand.append(value)
        else:
            params[name] = value
    return params, expand


def stripe_page(objects: Sequence[Json], params: Mapping[str, str], url: str) -> Answer:
    """One list page the way Stripe pages: ``objects`` already newest first."""
    try:
        limit = int(params.get("limit", "10"))
    except ValueError:
        return stripe_error(400, "Invalid integer: limit", param="limit")
    if not 1 <= limit <= 100:
        return stripe_error(400, "This value must be between 1 and 100.", param="limit")
    ids = [o["id"] for o in objects]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after:
        if after not in ids:
            return stripe_error(404, f"No such object: '{after}'", code="resource_missing", param="starting_after")
        rest = list(objects[ids.index(after) + 1 :])
        data, has_more = rest[:limit], len(rest) > limit
    elif before:
        if before not in ids:
            return stripe_error(404, f"No such object: '{before}'", code="resource_missing", param="ending_before")
        head = list(objects[: ids.index(before)])
        data, has_more = head[-limit:], len(head) > limit
    else:
        data, has_more = list(objects[:limit]), len(objects) > limit
    return 200, {"object": "list", "data": data, "has_more": has_more, "url": url}


def _window(params: Mapping[str, str], name: str) -> Callable[[int], bool] | Answer:
    """A predicate for ``name[gt|gte|lt|lte]`` filters, or a 400 answer."""
    tests: list[Callable[[int], bool]] = []
    ops: dict[str, Callable[[int, int], bool]] = {
        "gt": lambda v, b: v > b,
        "gte": lambda v, b: v >= b,
        "lt": lambda v, b: v < b,
        "lte": lambda v, b: v <= b,
    }
    for key, raw in params.items():
        match = re.fullmatch(rf"{name}\[(\w+)\]", key)
        if not match:
            continue
        op = ops.get(match.group(1))
        if op is None or not raw.lstrip("-").isdigit():
            return stripe_error(400, f"Invalid {key}: {raw!r}", param=key)
        bound = int(raw)
        tests.append(lambda v, op=op, bound=bound: op(v, bound))
    return lambda value: all(t(value) for t in tests)


@dataclass
class PayoutLedger:
    """Automatic payouts and their itemization (balance transactions), Stripe-shaped."""

    fetch: Fetch
    payouts: dict[str, Json] = field(default_factory=dict)
    transactions: dict[str, list[Json]] = field(default_factory=dict)
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
            # Newest first, as Stripe lists.
            self.transactions[payout_id] = sorted([payout_txn, *txns], key=lambda t: t["created"], reverse=True)
        return payout

    # -- routing --------------------------------------------------------------------

    def route(self, method: str, path: str, query: str) -> Answer | None:
        """Stripe's answer for a request this ledger serves, else ``None`` (forward it)."""
        if method != "GET":
            return None
        params, expand = parse_query(query)
        if path == "/v1/balance_transactions" and "payout" in params:
            return self._itemize(params, expand)
        if path.startswith("/v1/payouts/") and path.count("/") == 3:
            payout = self.payouts.get(path.rsplit("/", 1)[1])
            return (200, payout) if payout is not None else None
        wildcard = path == "/v1/events" and params.get("type", "").endswith("*")
        windowed = any(k.startswith(("created[", "arrival_date[")) for k in params)
        if re.fullmatch(r"/v1/\w+", path) and (windowed or wildcard):
            return self._filtered_list(path, params)
        return None

    def _itemize(self, params: dict[str, str], expand: list[str]) -> Answer:
        payout_id = params.pop("payout")
        with self._lock:
            txns = self.transactions.get(payout_id)
        if txns is None:
            status, body = self.fetch(f"/v1/payouts/{payout_id}")
            if status == 404:
                return stripe_error(404, f"No such payout: '{payout_id}'", code="resource_missing", param="payout")
            if status != 200:
                return status, body
            return stripe_error(400, MANUAL_PAYOUT_MESSAGE, param="payout")
        unknown = [e for e in expand if e != "data.source"]
        if unknown:
            return stripe_error(400, f"This property cannot be expanded ({unknown[0]}).", param="expand")
        status, page = stripe_page(txns, params, "/v1/balance_transactions")
        if status == 200 and expand:
            page["data"] = [self._expand_source(t) for t in page["data"]]
        return status, page

    def _expand_source(self, txn: Json) -> Json:
        source = txn.get("source")
        if not isinstance(source, str):
            return txn
        if source in self.payouts:
            return {**txn, "source": self.payouts[source]}
        status, body = self.fetch(f"/v1/{_collection(source)}/{source}")
        return {**txn, "source": body if status == 200 else source}

    def _filtered_list(self, path: str, params: dict[str, str]) -> Answer:
        """A list with the filters localstripe lacks, newest first, paged like Stripe.

        ``created[...]`` and ``arrival_date[...]`` windows, ``type`` with a ``*`` wildcard
        (events), ``status``; the ledger's payouts join ``/v1/payouts``. Everything is
        read from the upstream unfiltered, then filtered here.
        """
        checks: list[Callable[[Json], bool]] = []
        for name in ("created", "arrival_date"):
            keep = _window(params, name)
            if isinstance(keep, tuple):
                return keep
            checks.append(lambda obj, keep=keep, name=name: keep(int(obj.get(name) or 0)))
        kind = params.get("type")
        if kind is not None:
            prefix = kind[:-1] if kind.endswith("*") else None
            checks.append(lambda obj: obj.get("type", "").startswith(prefix) if prefix else obj.get("type") == kind)
        if "status" in params:
            checks.append(lambda obj: obj.get("status") == params["status"])
        paging = {k: v for k, v in params.items() if k in ("limit", "starting_after", "ending_before")}
        unknown = sorted(k for k in params if k not in paging and k not in ("type", "status") and "[" not in k)
        if unknown:
            return stripe_error(400, f"Received unknown parameter: {unknown[0]}", param=unknown[0])
        upstream: list[Json] = []
        after = ""
        for _ in range(1000):  # bounded: 100k upstream objects at most
            status, body = self.fetch(f"{path}?limit=100{after}")
            if status != 200:
                return status, body
            upstream.extend(body["data"])
            if not body.get("has_more") or not body["data"]:
                break
            after = f"&starting_after={body['data'][-1]['id']}"
        with self._lock:
            mine = list(self.payouts.values()) if path == "/v1/payouts" else []
        # The upstream (localstripe behind the front) lists every resource newest first; the
        # ledger's own payouts are kept oldest first. A stable sort on ``created`` keeps each
        # one's order within a second.
        rows = [o for o in [*reversed(mine), *upstream] if all(check(o) for check in checks)]
        rows.sort(key=lambda o: int(o.get("created") or 0), reverse=True)
        return stripe_page(rows, paging, path)


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

    A run is ``pending`` for its first ``pending_polls`` retrievals, then ``succeeded``
    (its ``result`` a ``finance_report_run`` File whose contents the :class:`FilesHost`
    serves) or ``failed`` (``error`` set) as ``outcome`` says when the run was created.
    """

    report_types: dict[str, Json] = field(default_factory=dict)
    runs: dict[str, Json] = field(default_factory=dict)
    files: dict[str, Json] = field(default_factory=dict)
    contents: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    pending_polls: int = 2
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

    def route(self, method: str, path: str, query: str, body: bytes) -> Answer | None:
        """Stripe's answer for a reporting or file-metadata request, else ``None``."""
        parts = path.strip("/").split("/")
        if parts[:3] == ["v1", "reporting", "report_types"] and len(parts) == 4 and method == "GET":
            found = self.report_types.get(parts[3])
            if found is None:
                return stripe_error(404, f"No such report type: '{parts[3]}'", code="resource_missing", param="id")
            return 200, found
        if parts[:3] == ["v1", "reporting", "report_runs"]:
            if len(parts) == 3 and method == "POST":
                return self._create_run(dict(parse_qsl(body.decode(), keep_blank_values=True)))
            if len(parts) == 4 and method == "GET":
                return self._retrieve_run(parts[3])
        if parts[:2] == ["v1", "files"] and len(parts) == 3 and method == "GET":
            found = self.files.get(parts[2])
            if found is None:
                return stripe_error(404, f"No such file upload: '{parts[2]}'", code="resource_missing", param="file")
            return 200, found
        return None

    def _create_run(self, form: dict[str, str]) -> Answer:
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
        return 200, _public(run)

    def _retrieve_run(self, run_id: str) -> Answer:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                return stripe_error(404, f"No such report run: '{run_id}'", code="resource_missing", param="id")
            if run["status"] == "pending":
                if self._polls_left[run_id] > 0:
                    self._polls_left[run_id] -= 1
                else:
                    self._finish(run)
            return 200, _public(run)

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
            status, error = stripe_error(404, "No such file upload", code="resource_missing")
            write_response(self, status, error)
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
    """The fault proxy with the ledger's routes answered before forwarding upstream."""

    def __init__(self, upstream_url: str, plan: FaultPlan | None = None, seed: int = 0) -> None:
        super().__init__(upstream_url, plan or FaultPlan(), seed)
        self.ledger = PayoutLedger(fetch=self._fetch_upstream)
        self.reporting = Reporting()
        self.files_host: _FilesHTTPServer | None = None

    def _fetch_upstream(self, target: str) -> Answer:
        host, port, base = self._upstream
        conn = http.client.HTTPConnection(host, port, timeout=self.upstream_timeout)
        try:
            conn.request("GET", base + target, headers={"Authorization": f"Bearer {TEST_API_KEY}"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def _forward(
        self, method: str, target: str, headers: CaseInsensitiveDict[str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        if self.files_host is not None and re.fullmatch(r"/v1/files/\w+/contents", parts.path):
            return self._to_files_host(target, headers)
        answer = self.ledger.route(method, parts.path, parts.query)
        if answer is None:
            answer = self.reporting.route(method, parts.path, parts.query, body)
        if answer is None:
            return super()._forward(method, target, headers, body)
        self._count("forwarded")
        status, payload = answer
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    def _to_files_host(self, target: str, headers: CaseInsensitiveDict[str]) -> tuple[int, dict[str, str], bytes]:
        """Pass a file download to the separate files host (this base URL serves both, as derived)."""
        assert self.files_host is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.files_host.server_address[1], timeout=self.upstream_timeout)
        try:
            conn.request("GET", target, headers={"Authorization": headers.get("Authorization", "")})
            resp = conn.getresponse()
            self._count("forwarded")
            return resp.status, {"Content-Type": resp.getheader("Content-Type") or ""}, resp.read()
        finally:
            conn.close()


@contextlib.contextmanager
def run_files_host(reporting: Reporting) -> Iterator[_FilesHTTPServer]:
    """Serve the files host for ``reporting`` on 127.0.0.1 (free port)."""
    httpd = _FilesHTTPServer(reporting)
    with serve_in_thread(httpd, "files-host", threading.Event()):
        yield httpd


@contextlib.contextmanager
def run_ledger_front(upstream_url: str, faults: FaultPlan | None = None) -> Iterator[LedgerFront]:
    """Serve :class:`LedgerFront` on 127.0.0.1 (free port) before ``upstream_url``; yield it."""
    front = LedgerFront(upstream_url, faults)
    httpd = _ProxyHTTPServer(front)
    front._httpd = httpd
    with run_files_host(front.reporting) as files_host, serve_in_thread(httpd, "ledger-front", front._stop):
        front.files_host = files_host
        yield front
