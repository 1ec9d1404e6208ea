"""The Stripe webhook endpoint on Airflow's API server: signed Stripe events become asset events.

Mounted by the plugin at ``/stripe/webhooks/<conn_id>``; see docs/webhooks.md. Body size and
read time are bounded before the signature is checked; anything not correctly signed gets the
same bare 400 (the signature is the only authentication). Recording is de-duplicated by event id
under a process lock and, on PostgreSQL, an advisory lock (:func:`_lock_event`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.exceptions import AirflowNotFoundException
from airflow.secrets.environment_variables import CONN_ENV_PREFIX
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from airflow_provider_stripe.constants import CONN_TYPE
from airflow_provider_stripe.errors import StripeConfigurationError, WebhookPayloadError, WebhookSignatureError
from airflow_provider_stripe.events.assets import event_asset_uri, is_event_type, summarize_event
from airflow_provider_stripe.events.signature import DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, check_header
from airflow_provider_stripe.validation import CONN_ID_RE

log = logging.getLogger(__name__)


MAX_BODY_BYTES = 256 * 1024
"""Largest accepted body. Stripe events are a few KiB; the largest are well below this."""

BODY_READ_TIMEOUT_S = 10.0
"""Longest time the whole body may take to arrive (then 408): it is read before the signature is checked."""

DEDUP_WINDOW = timedelta(days=31)
"""How far back a redelivery is recognised: Stripe keeps (and can resend) events for 30 days."""

_INVALID = {"detail": "Invalid Stripe webhook request."}
_record_lock = threading.Lock()


def _lock_event(session: Any, event_id: str) -> None:
    """On PostgreSQL, lock ``event_id`` until commit, so API-server processes check and insert one at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return
    from sqlalchemy import func, select

    key = int.from_bytes(hashlib.sha256(f"stripe-webhook:{event_id}".encode()).digest()[:8], "big", signed=True)
    session.execute(select(func.pg_advisory_xact_lock(key)))


class _Rejected(Exception):
    """The request is not a correctly signed Stripe event for a known connection: answer 400."""


class _TooLarge(Exception):
    """The body exceeds :data:`MAX_BODY_BYTES`: answer 413."""


def create_webhook_app() -> FastAPI:
    """The FastAPI app serving ``POST /webhooks/{conn_id}`` (mount it at :data:`WEBHOOK_URL_PREFIX`)."""
    app = FastAPI(title="Stripe webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/webhooks/{conn_id}")
    async def receive_stripe_event(conn_id: str, request: Request) -> JSONResponse:
        try:
            body = await asyncio.wait_for(_read_body(request), BODY_READ_TIMEOUT_S)
            if not CONN_ID_RE.fullmatch(conn_id):
                raise _Rejected("malformed connection id")
            summary = await run_in_threadpool(_verify, conn_id, body, request.headers.get(SIGNATURE_HEADER))
        except _TooLarge:
            log.warning("Stripe webhook for connection %r refused: body over %d bytes", conn_id, MAX_BODY_BYTES)
            return JSONResponse({"detail": "Request body too large."}, status_code=413)
        except asyncio.TimeoutError:
            log.warning("Stripe webhook for connection %r refused: body took over %.0f s", conn_id, BODY_READ_TIMEOUT_S)
            return JSONResponse({"detail": "Request body not received in time."}, status_code=408)
        except ClientDisconnect:
            log.info("Stripe webhook for connection %r: the client disconnected before sending its body", conn_id)
            return JSONResponse(_INVALID, status_code=400)  # nobody reads it: the client is gone
        except _Rejected as exc:
            log.warning("Stripe webhook for connection %r refused: %s", conn_id, exc)
            return JSONResponse(_INVALID, status_code=400)
        result = await run_in_threadpool(record_event, conn_id, summary)
        return JSONResponse(result, status_code=200)

    return app


async def _read_body(request: Request) -> bytes:
    """The raw body, read in chunks and abandoned as soon as it exceeds :data:`MAX_BODY_BYTES`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Rejected("malformed Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _verify(conn_id: str, body: bytes, signature: str | None) -> dict[str, Any]:
    """The event's summary once the header (first, without a secret), the connection (looked up by its exact
    id) and the signature check out; every failure is :class:`_Rejected`: the same bare 400, telling nothing
    about the connection."""
    try:
        check_header(signature, tolerance=DEFAULT_TOLERANCE_SECONDS)
    except WebhookSignatureError as exc:
        raise _Rejected(f"signature header refused before any look-up ({exc.reason})") from None
    try:
        from airflow_provider_stripe.hooks.stripe import StripeHook

        # Airflow would find this spelling in an env var meant for its lower-case suffix (the id tasks, the
        # rate limiter and asset events use): refused.
        if conn_id != conn_id.lower() and f"{CONN_ENV_PREFIX}{conn_id.upper()}" in os.environ:
            raise _Rejected("connection id differs in case from its AIRFLOW_CONN_ environment variable's id")
        hook = StripeHook(conn_id)
        try:
            conn = hook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise _Rejected("no such connection") from None
        if conn.conn_id != conn_id:  # a case-insensitive backend (e.g. a MySQL collation) matched another spelling
            raise _Rejected("connection id found under another spelling")
        if conn.conn_type != CONN_TYPE:
            raise _Rejected(f"connection type is {conn.conn_type!r}, not {CONN_TYPE!r}")
        try:
            event = hook.construct_event(body, signature, tolerance=DEFAULT_TOLERANCE_SECONDS)
        except WebhookSignatureError as exc:
            raise _Rejected(f"signature check failed ({exc.reason})") from None
        except WebhookPayloadError:
            raise _Rejected("signed body is not a JSON object") from None
        except StripeConfigurationError as exc:  # the message names the field, never a secret
            raise _Rejected(f"the connection is invalid: {exc}") from None
        return summarize_event(event)
    except _Rejected:
        raise
    except Exception as exc:  # a bad request must never become a 500; the type is enough to log
        raise _Rejected(f"{type(exc).__name__} while verifying (details withheld)") from None


def record_event(conn_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Record ``summary`` on every ``stripe://events/<type>`` asset that lacks it; say what happened."""
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    event_id, event_type = summary["event_id"], summary["type"]
    if not is_event_type(event_type):
        return {"status": "ignored", "event_id": event_id, "reason": "not an event type with an asset URI"}
    uri = event_asset_uri(event_type)
    with _record_lock, create_session() as session:
        _lock_event(session, event_id)
        assets = list(session.scalars(select(AssetModel).where(AssetModel.uri == uri)))
        if not assets:
            log.info("Stripe event %s (%s) ignored: no DAG uses an asset with URI %s", event_id, event_type, uri)
            return {"status": "ignored", "event_id": event_id, "reason": f"no asset with URI {uri}"}
        # Compared here, not in SQL: Airflow 3.1 stores ``extra`` as JSON text, which SQL JSON
        # paths cannot read; the window keeps the rows read few.
        recent = session.execute(
            select(AssetEvent.asset_id, AssetEvent.extra).where(
                AssetEvent.asset_id.in_([a.id for a in assets]),
                AssetEvent.timestamp >= datetime.now(timezone.utc) - DEDUP_WINDOW,
            )
        )
        payloads = ((asset_id, seen.get("payload") if isinstance(seen, dict) else None) for asset_id, seen in recent)
        already = {asset_id for asset_id, p in payloads if isinstance(p, dict) and p.get("event_id") == event_id}
        extra = {"from_webhook": True, "conn_id": conn_id, "payload": summary}
        recorded = sum(
            asset_manager.register_asset_change(asset=asset, extra=extra, session=session) is not None
            for asset in assets
            if asset.id not in already
        )
    if not recorded:
        log.info("Stripe event %s (%s) already recorded; redelivery ignored", event_id, event_type)
        return {"status": "duplicate", "event_id": event_id}
    log.info("Stripe event %s (%s) recorded on %d asset(s) with URI %s", event_id, event_type, recorded, uri)
    return {"status": "recorded", "event_id": event_id, "assets": recorded}
