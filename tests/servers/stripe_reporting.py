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
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from requests.structures import CaseInsensitiveDict

from tests.servers.fault_proxy import FaultPlan, FaultProxy, _ProxyHTTPServer
from tests.servers.localstripe_server import TEST_API_KEY
from tests.servers.stub_stripe import serve_in_thread

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
        # localstripe lists in creation order: reversed, then a stable sort, is Stripe's newest first.
        rows = [o for o in reversed([*upstream, *mine]) if all(check(o) for check in checks)]
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


class LedgerFront(FaultProxy):
    """The fault proxy with the ledger's routes answered before forwarding upstream."""

    def __init__(self, upstream_url: str, plan: FaultPlan | None = None, seed: int = 0) -> None:
        super().__init__(upstream_url, plan or FaultPlan(), seed)
        self.ledger = PayoutLedger(fetch=self._fetch_upstream)

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
        answer = self.ledger.route(method, parts.path, parts.query)
        if answer is None:
            return super()._forward(method, target, headers, body)
        self._count("forwarded")
        status, payload = answer
        return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


@contextlib.contextmanager
def run_ledger_front(upstream_url: str, faults: FaultPlan | None = None) -> Iterator[LedgerFront]:
    """Serve :class:`LedgerFront` on 127.0.0.1 (free port) before ``upstream_url``; yield it."""
    front = LedgerFront(upstream_url, faults)
    httpd = _ProxyHTTPServer(front)
    front._httpd = httpd
    with serve_in_thread(httpd, "ledger-front", front._stop):
        yield front
