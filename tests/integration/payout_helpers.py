"""Helpers for the payout batch tests: task context, a state store, counting payouts, fakes.

* :func:`payout_context` -- the context Airflow gives ``execute`` (ti, dag_run, logical
  date, optionally ``task_state_store``);
* :class:`MemoryStateStore` -- the ``task_state_store`` API (``get``/``set``) over a dict,
  JSON round-tripped like Airflow's, for execute-level tests (the ``dag.test`` tests use
  Airflow's real store);
* :func:`payouts_by_reference` -- what a Stripe-compatible server holds, grouped by the
  provider's metadata reference (read with plain HTTP, not through the provider);
* :class:`FakePayoutsApi` -- a scripted payouts API for the recording stub
  (create/list, refusals on demand).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import requests

from airflow_provider_stripe.payouts.keys import REFERENCE_METADATA_KEY, RUN_METADATA_KEY
from tests.servers.stub_stripe import RecordedRequest, StubResponse, stripe_error

LOGICAL_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def payout_context(
    *,
    dag_id: str = "payout_batch_tests",
    logical_date: datetime | None = LOGICAL_DATE,
    run_id: str | None = None,
    task_id: str = "pay_out",
    map_index: int = -1,
    try_number: int = 1,
    store: MemoryStateStore | None = None,
) -> Any:
    """The parts of an Airflow task context the payout operators read (typed ``Any``: it
    stands in for ``airflow.sdk.Context``)."""
    run_id = run_id or f"scheduled__{(logical_date or LOGICAL_DATE).isoformat()}"
    ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number)
    ti.xcoms = {}  # what the operator pushed itself (the batch publishes its results before failing)
    ti.xcom_push = lambda key, value: ti.xcoms.__setitem__(key, value)
    dag_run = SimpleNamespace(
        dag_id=dag_id,
        run_id=run_id,
        logical_date=logical_date,
        run_after=logical_date or datetime.now(timezone.utc),
        start_date=datetime.now(timezone.utc),
        queued_at=datetime.now(timezone.utc),
    )
    context: dict[str, Any] = {"ti": ti, "dag_run": dag_run, "run_id": run_id, "logical_date": logical_date}
    if store is not None:
        context["task_state_store"] = store
    return context


class MemoryStateStore:
    """``context["task_state_store"]``'s API over a dict (values JSON round-tripped, like Airflow's)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.sets = 0

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.values.get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        self.values[key] = json.dumps(value)
        self.sets += 1


def list_all_payouts(base_url: str, api_key: str) -> list[dict[str, Any]]:
    """Every payout on a Stripe-compatible server, through plain HTTP pagination."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    with requests.Session() as session:
        session.auth = (api_key, "")
        while True:
            page = session.get(f"{base_url}/v1/payouts", params=params, timeout=10)
            page.raise_for_status()
            body = page.json()
            out += body["data"]
            if not body.get("has_more") or not body["data"]:
                return out
            params["starting_after"] = body["data"][-1]["id"]


def payouts_by_reference(base_url: str, api_key: str, run_tag: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Payouts grouped by the provider's reference metadata (optionally of one run tag only)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for payout in list_all_payouts(base_url, api_key):
        metadata = payout.get("metadata") or {}
        if run_tag is not None and metadata.get(RUN_METADATA_KEY) != run_tag:
            continue
        grouped[str(metadata.get(REFERENCE_METADATA_KEY))].append(payout)
    return dict(grouped)


def write_jsonl(path: Any, items: list[dict[str, Any]]) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")
    return str(path)


def eur_items(count: int, prefix: str = "inv", start: int = 0) -> list[dict[str, Any]]:
    """``count`` valid EUR instructions with references ``<prefix>-<n>``."""
    return [
        {"reference": f"{prefix}-{n}", "amount": 1000 + n, "currency": "eur", "metadata": {"batch": prefix}}
        for n in range(start, start + count)
    ]


class FakePayoutsApi:
    """A payouts API for :class:`~tests.servers.stub_stripe.StubServer`: create and list.

    ``refuse(params) -> StubResponse | None`` may refuse a create (e.g. insufficient
    funds); refusals create nothing. Listing supports ``limit`` and ``starting_after``
    (newest first, like Stripe) and ``created[gte]``.
    """

    def __init__(self, refuse: Callable[[Mapping[str, str]], StubResponse | None] | None = None) -> None:
        self.refuse = refuse
        self.payouts: list[dict[str, Any]] = []
        self.creates: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, req: RecordedRequest) -> StubResponse | None:
        if req.path == "/v1/payouts" and req.method == "POST":
            return self._create(req)
        if req.path == "/v1/payouts" and req.method == "GET":
            return self._list(req)
        return None

    def _create(self, req: RecordedRequest) -> StubResponse:
        form = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
        with self._lock:
            self.creates.append(req)
            refusal = self.refuse(form) if self.refuse else None
            if refusal is not None:
                return refusal
            payout = {
                "id": f"po_fake{next(self._ids):08d}",
                "object": "payout",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "status": "pending",
                "created": int(time.time()),
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self.payouts.append(payout)
        return StubResponse(200, payout)

    def _list(self, req: RecordedRequest) -> StubResponse:
        query = {k: v[0] for k, v in req.query.items()}
        since = int(query.get("created[gte]", 0))
        limit = int(query.get("limit", 10))
        with self._lock:
            newest_first = [p for p in reversed(self.payouts) if p["created"] >= since]
        if "starting_after" in query:
            ids = [p["id"] for p in newest_first]
            newest_first = newest_first[ids.index(query["starting_after"]) + 1 :]
        page = newest_first[:limit]
        body = {"object": "list", "url": "/v1/payouts", "data": page, "has_more": len(newest_first) > limit}
        return StubResponse(200, body)


def insufficient_funds(message: str = "You have insufficient funds in your Stripe account.") -> StubResponse:
    """Stripe's answer to a payout the balance cannot cover (a definitive 400)."""
    return stripe_error(400, "invalid_request_error", "balance_insufficient", message)


def iter_lines(path: Any) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)
