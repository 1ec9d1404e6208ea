"""The payout-batch view in the Airflow UI, so finance need not read task logs: ``/`` lists recent batch runs,
``/runs/{dag_id}/{run_id}`` shows one run's batches, read-only from their ``return_value`` XComs, to users
allowed to read the DAG (``requires_access_dag``); everything shown is escaped."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import and_, select

from airflow_provider_stripe.links.dashboard import object_url
from airflow_provider_stripe.payouts.results import OUTCOMES
from airflow_provider_stripe.validation import format_amount

BATCH_OPERATOR = "StripePayoutBatchOperator"
RECENT_RUNS = 50
DAG_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
RUN_ID = re.compile(r"[A-Za-z0-9_.~:+-]{1,250}")
COLUMNS = ("Reference", "Amount", "Outcome", "Payout", "Status", "Dashboard")
CSP = "default-src 'none'; style-src 'unsafe-inline'"
STYLE = "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px}"


def _batches(session: Any, *conditions: Any, limit: int | None = None) -> list[tuple[Any, Any]]:
    """``(xcom row, value)`` of batch tasks' results matching ``conditions``, newest first."""
    query = (
        select(XComModel)
        .join(
            TaskInstance,
            and_(
                TaskInstance.dag_id == XComModel.dag_id,
                TaskInstance.run_id == XComModel.run_id,
                TaskInstance.task_id == XComModel.task_id,
                TaskInstance.map_index == XComModel.map_index,
            ),
        )
        .where(TaskInstance.operator == BATCH_OPERATOR, XComModel.key == "return_value", *conditions)
        .order_by(XComModel.timestamp.desc())
        .limit(limit)
    )
    rows = [(row, XComModel.deserialize_value(row)) for row in session.scalars(query)]
    return [(row, value) for row, value in rows if isinstance(value, Mapping)]


def _summary(value: Mapping[str, Any]) -> Mapping[str, Any]:
    summary = value.get("summary")
    return summary if isinstance(summary, Mapping) else {}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP},
    )


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table of already-escaped cells."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _item_row(item: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    payout = str(item.get("payout_id") or "")
    livemode = summary.get("livemode")
    link = ""
    if payout.startswith("po_") and isinstance(livemode, bool):
        url = object_url(payout, livemode=livemode, account_id=summary.get("account_id") or None)
        link = f'<a href="{escape(url)}" rel="noopener noreferrer">{escape(url)}</a>'
    amount = format_amount(int(item.get("amount", 0)), str(item.get("currency", "")))
    outcome = str(item.get("outcome", ""))
    if item.get("paid_by_run"):
        outcome += f" (run {item['paid_by_run']})"
    cells = (item.get("reference", ""), amount, outcome, payout, item.get("status") or "")
    return [*(escape(str(c)) for c in cells), link]


def _batch_section(task_id: str, value: Mapping[str, Any]) -> str:
    summary = _summary(value)
    counts = [[escape(o), escape(str(summary[o]))] for o in OUTCOMES if summary.get(o)]
    totals = [
        [escape(c), escape(o), escape(format_amount(int(a), c))]
        for c, per in (summary.get("amounts") or {}).items()
        for o, a in per.items()
    ]
    results = value.get("results")
    items = [i for i in results if isinstance(i, Mapping)] if isinstance(results, list) else []
    items.sort(key=lambda i: int(i.get("index", 0)))
    note = ""
    if summary.get("results_path"):
        note = f"<p>Only failed items are shown; all items are in {escape(str(summary['results_path']))}.</p>"
    elif summary.get("results_truncated"):
        note = "<p>Only failed items are shown (the batch was larger than its inline results limit).</p>"
    return (
        f"<h2>Task {escape(task_id)}: {escape(str(summary.get('total', len(items))))} item(s)</h2>"
        + _table(("Outcome", "Items"), counts)
        + "<h3>Totals</h3>"
        + _table(("Currency", "Outcome", "Amount"), totals)
        + note
        + "<h3>Items</h3>"
        + _table(COLUMNS, (_item_row(i, summary) for i in items))
    )


def create_payout_view_app() -> FastAPI:
    """The FastAPI app serving the view (mount it at ``PAYOUT_VIEW_URL_PREFIX``)."""
    app = FastAPI(title="Stripe payout batches", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def recent_runs(request: Request, user: GetUserDep, session: SessionDep) -> HTMLResponse:
        readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
        rows = []
        for row, value in _batches(session, XComModel.dag_id.in_(readable), limit=RECENT_RUNS):
            summary = _summary(value)
            href = f"{request.scope.get('root_path', '')}/runs/{row.dag_id}/{row.run_id}"
            outcomes = ", ".join(f"{summary[o]} {o}" for o in OUTCOMES if summary.get(o))
            cells = (row.dag_id, row.run_id, row.task_id, outcomes)
            rows.append([f'<a href="{escape(href)}">{escape(str(cells[0]))}</a>', *(escape(str(c)) for c in cells[1:])])
        return _page("Stripe payout batches", _table(("DAG", "Run", "Task", "Outcomes"), rows))

    @app.get(
        "/runs/{dag_id}/{run_id}",
        response_class=HTMLResponse,
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.XCOM))],
    )
    def run_view(dag_id: str, run_id: str, session: SessionDep) -> HTMLResponse:
        if not DAG_ID.fullmatch(dag_id) or not RUN_ID.fullmatch(run_id):
            raise HTTPException(status_code=400, detail="dag_id or run_id has characters Airflow does not allow")
        found = _batches(session, XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        if not found:
            raise HTTPException(status_code=404, detail=f"No payout batch results for DAG {dag_id!r}, run {run_id!r}")
        body = "".join(_batch_section(row.task_id, value) for row, value in reversed(found))
        return _page(f"Payout batch: {dag_id} / {run_id}", body)

    return app
